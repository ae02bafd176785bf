classdef Solver < cebra.internal.Handle
%SOLVER  CEBRA training: the reference's cebra.CEBRA(...).fit(X, y) and .transform(X), without Python.
%
%   S = cebra.Solver('KEY', VALUE, ...) with the reference's option names and defaults:
%   'model_architecture' ('offset1-model'), 'batch_size' (0: full batch), 'learning_rate' (3e-4),
%   'temperature' (1), 'temperature_mode' ('constant' or 'auto'), 'min_temperature', 'distance'
%   ('cosine' or 'euclidean'), 'conditional' ('time', 'time_delta', 'delta'), 'time_offsets', 'delta',
%   'max_iterations', 'num_hidden_units', 'output_dimension', 'hybrid', 'device' ('cpu', 'cuda',
%   'cuda:N'), 'seed' (drawn at random when not given; options(S) shows it).
%   S = cebra.Solver.fromFile(PATH) reads a solver saved with save(S, PATH).
%
%   Methods:
%     fit(S, X)                    time-contrastive training on X (time x neurons)
%     fit(S, X, Y)                 with labels: a single/double matrix Y (time x d) is continuous, an
%                                  integer or logical vector (one per time step) is discrete; both
%                                  may be given (fit(S, X, Ycontinuous, Ydiscrete))
%     fit(..., 'Progress', FN)     FN(R) after every step, R a struct with step, totalSteps, loss,
%                                  align, uniform, temperature; FN returning true stops early (the
%                                  solver keeps what it learned). 'Verbose', true prints every step.
%     LOSS = fit(...)              also returns the loss of every step
%     E = transform(S, X)          the embedding, time x output_dimension (padded as the reference)
%     H = history(S)               struct of per-step columns loss, align, uniform, temperature
%     isFitted(S), options(S)      whether it is trained; every option in use (text)
%     M = model(S)                 a cebra.Model with a copy of the weights (streaming, saving)
%     save(S, PATH)                weights, options and history in one .safetensors file (also
%                                  readable by cebra.Model.fromFile)
%     delete(S)                    releases the solver (also when S is cleared)
%
%   X is MATLAB's usual time x neurons matrix, single or double (the embedding has the class of X).
%
%   Example:
%     t = (0:499)';  pos = sin(t / 20);
%     X = exp(-(pos - linspace(-1, 1, 10)).^2 * 4);   % 500 steps x 10 neurons tuned to pos
%     s = cebra.Solver('model_architecture', 'offset10-model', 'batch_size', 128, ...
%                      'max_iterations', 200, 'output_dimension', 3, 'seed', 1);
%     loss = fit(s, X, pos, 'Verbose', true);
%     E = transform(s, X);                              % 500 x 3
%
%   See also cebra.Model, cebra.Stream.

  methods
    function obj = Solver(varargin)
      if nargin == 1 && isstruct(varargin{1}) && isfield(varargin{1}, 'cebraHandleId')
        obj.Id = varargin{1}.cebraHandleId;  % adopts an id from cebra.Solver.fromFile
        return;
      end
      obj.Id = cebra_mex('solver_new', cebra.internal.optionString(varargin));
    end

    function loss = fit(obj, X, varargin)
      %FIT  Trains from scratch. fit(S, X), fit(S, X, Y), fit(S, X, Ycontinuous, Ydiscrete),
      %   then 'Progress', FN and 'Verbose', TF. Returns the loss of every step.
      continuous = [];
      discrete = [];
      k = 1;
      while k <= numel(varargin) && ~ischar(varargin{k})
        y = varargin{k};
        if isinteger(y) || islogical(y)
          if ~isempty(discrete)
            error('cebra:INVALID_ARGUMENT', 'fit: two discrete label arguments');
          end
          discrete = y;
        elseif isnumeric(y)
          if ~isempty(continuous)
            error('cebra:INVALID_ARGUMENT', 'fit: two continuous label arguments (use int32/int64/logical for discrete labels)');
          end
          continuous = y;
        else
          error('cebra:INVALID_ARGUMENT', 'fit: labels must be numeric or logical, got a %s', class(y));
        end
        k = k + 1;
      end
      opts = cebra.internal.parseArgs(varargin(k:end), struct('Progress', [], 'Verbose', false), 'fit');
      verbose = cebra.internal.checkFlag(opts.Verbose, 'Verbose', 'fit');
      progress = opts.Progress;
      if ~isempty(progress) && ~isa(progress, 'function_handle')
        error('cebra:INVALID_ARGUMENT', 'fit: ''Progress'' must be a function handle');
      end
      if verbose
        user = progress;
        progress = @(r) cebra.Solver.printStep(r, user);
      end
      cebra_mex('solver_fit', obj.Id, X, continuous, discrete, progress);
      if nargout > 0
        loss = history(obj).loss;
      end
    end

    function E = transform(obj, X)
      %TRANSFORM  The embedding of X (time x neurons): time x output_dimension, one row per step.
      E = cebra_mex('solver_transform', obj.Id, X);
    end

    function H = history(obj)
      %HISTORY  Per-step record of the last fit: struct with columns loss, align, uniform, temperature.
      H = cebra_mex('solver_history', obj.Id);
    end

    function tf = isFitted(obj)
      %ISFITTED  Whether the solver holds a trained model (after fit or fromFile).
      tf = cebra_mex('solver_is_fitted', obj.Id);
    end

    function text = options(obj)
      %OPTIONS  Every option in use as 'key=value;...', the seed included.
      text = cebra_mex('solver_options', obj.Id);
    end

    function m = model(obj)
      %MODEL  A cebra.Model holding a copy of the trained weights (for forward, transform, streaming).
      m = cebra.Model(struct('cebraHandleId', cebra_mex('solver_model', obj.Id)));
    end

    function save(obj, path)
      %SAVE  Saves the fitted solver; cebra.Solver.fromFile and cebra.Model.fromFile read it.
      cebra_mex('solver_save', obj.Id, path);
    end
  end

  methods (Static)
    function obj = fromFile(path)
      %FROMFILE  S = cebra.Solver.fromFile(PATH) reads a solver written by save.
      obj = cebra.Solver(struct('cebraHandleId', cebra_mex('solver_load', path)));
    end
  end

  methods (Static, Hidden)
    function stop = printStep(r, user)
      % The 'Verbose' progress: prints the step, then asks the user's function (if any).
      fprintf('cebra.Solver: step %d/%d  loss %.5f  align %.5f  uniform %.5f  temperature %.4f\n', ...
              r.step, r.totalSteps, r.loss, r.align, r.uniform, r.temperature);
      stop = ~isempty(user) && cebra.internal.askToStop(user, r);
    end
  end
end
