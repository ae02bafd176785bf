classdef Model < cebra.internal.Handle
%MODEL  A CEBRA model: a network of the registry (or a registered MATLAB function), or one read from a file.
%
%   M = cebra.Model(NAME, NUMNEURONS, NUMUNITS, NUMOUTPUT) builds the registered model NAME (see
%   cebra.getOptions) for NUMNEURONS input channels, NUMUNITS hidden units and NUMOUTPUT output
%   dimensions, with weights drawn from the library's seeded generator (cebra.manualSeed).
%   M = cebra.Model(..., 'KEY', VALUE, ...) passes options to the model, e.g. 'normalize', false.
%   M = cebra.Model.fromFile(PATH) rebuilds a model saved with save(M, PATH).
%
%   Methods:
%     Y = forward(M, X)            the network on X (time x neurons, or time x neurons x batch);
%                                  Y is outTime x numOutput (x batch)
%     Y = transform(M, X)          whole recording: X time x neurons -> Y time x numOutput (padded,
%                                  as the reference); 'Pad', false; 'BatchSize', N
%     load(M, PATH)                weights from a .safetensors file (reference state_dict names)
%     save(M, PATH)                weights and architecture, readable by cebra.Model.fromFile
%     [L, R] = offset(M)           receptive field: L + R input steps give one output step
%     [TOTAL, TRAINABLE] = numParameters(M)
%     numInput(M), numOutput(M), resampleFactor(M), outputTime(M, T)
%     setTraining(M, TF)           dropout on or off (off by default)
%     setOutputNum(M, K, 'Override', TF), [F, P] = forwardClassifier(M, X)   classifier models
%     labelNum(M)                  classifier head size (0 before setOutputNum)
%     delete(M)                    releases the model (also when M is cleared)
%
%   Arrays are single or double (doubles are converted to single precision inside); the result has
%   the class of X. X is MATLAB's usual time x neurons matrix: no transposing.
%
%   Example:
%     addpath('bindings/matlab')               % or the install location
%     cebra.manualSeed(0);
%     m = cebra.Model('offset10-model', 7, 32, 3);
%     X = randn(100, 7);                       % 100 time steps x 7 neurons
%     Y = forward(m, X);                       % 91 x 3: one row per full receptive field
%     E = transform(m, X);                     % 100 x 3: one row per time step (padded)
%     save(m, 'model.safetensors');
%     m2 = cebra.Model.fromFile('model.safetensors');
%
%   See also cebra.Solver, cebra.Stream, cebra.getOptions, cebra.register, cebra.Criterion, cebra.manualSeed.

  properties (SetAccess = private)
    Name = '';  % registry name the model was built from ('' when read from a file)
  end
  methods
    function obj = Model(name, numNeurons, numUnits, numOutput, varargin)
      if nargin == 1 && isstruct(name) && isfield(name, 'cebraHandleId')
        obj.Id = name.cebraHandleId;  % adopts an id from cebra.Model.fromFile
        return;
      end
      if nargin < 4
        error('cebra:INVALID_ARGUMENT', 'usage: cebra.Model(name, numNeurons, numUnits, numOutput, ''key'', value, ...)');
      end
      options = cebra.internal.optionString(varargin);
      obj.Id = cebra_mex('model_init', name, numNeurons, numUnits, numOutput, options);
      obj.Name = name;
    end

    function Y = forward(obj, X)
      %FORWARD  Runs the network. X: time x neurons (x batch); Y: outTime x numOutput (x batch).
      %   outTime = outputTime(M, size(X, 1)). Y = forward(M, X).
      Y = cebra_mex('model_forward', obj.Id, X);
    end

    function Y = transform(obj, X, varargin)
      %TRANSFORM  Embeds a whole recording, as the reference's CEBRA.transform.
      %   Y = transform(M, X) with X time x neurons gives Y time x numOutput: the recording is padded
      %   by repeating its edge values (left steps before, right - 1 after), so there is one row per
      %   time step. transform(M, X, 'Pad', false) gives only the rows with a full receptive field
      %   (as forward). 'BatchSize', N splits the work into chunks of N steps (same result, memory
      %   bounded by the chunk; 0, the default, is one pass). Resampling models give fewer rows.
      opts = cebra.internal.parseArgs(varargin, struct('Pad', true, 'BatchSize', 0), 'transform');
      Y = cebra_mex('model_transform', obj.Id, X, cebra.internal.checkFlag(opts.Pad, 'Pad', 'transform'), opts.BatchSize);
    end

    function [left, right] = offset(obj)
      %OFFSET  Receptive field. [L, R] = offset(M); O = offset(M) gives [L, R].
      [left, right] = cebra_mex('model_get_offset', obj.Id);
      if nargout <= 1
        left = [left, right];
      end
    end

    function n = numInput(obj)
      %NUMINPUT  Input channels (neurons).
      n = cebra_mex('model_num_input', obj.Id);
    end

    function n = numOutput(obj)
      %NUMOUTPUT  Output dimensions.
      n = cebra_mex('model_num_output', obj.Id);
    end

    function n = resampleFactor(obj)
      %RESAMPLEFACTOR  Time downsampling factor (1 for models that do not resample).
      n = cebra_mex('model_resample_factor', obj.Id);
    end

    function [total, trainable] = numParameters(obj)
      %NUMPARAMETERS  [TOTAL, TRAINABLE] parameter counts (shared tensors count once).
      [total, trainable] = cebra_mex('model_num_parameters', obj.Id);
    end

    function t = outputTime(obj, time)
      %OUTPUTTIME  Output steps that forward gives for TIME input steps.
      t = cebra_mex('model_output_time', obj.Id, time);
    end

    function load(obj, path)
      %LOAD  Loads weights from a .safetensors file named by the reference state_dict keys.
      %   The model is unchanged when the file does not fit (cebra:FORMAT naming the tensor).
      cebra_mex('model_load', obj.Id, path);
    end

    function save(obj, path)
      %SAVE  Saves weights and architecture (.safetensors); cebra.Model.fromFile reads it back.
      cebra_mex('model_save', obj.Id, path);
    end

    function setTraining(obj, training)
      %SETTRAINING  Dropout on (true) or off (false, the default).
      cebra_mex('model_set_training', obj.Id, cebra.internal.checkFlag(training, 'training', 'setTraining'));
    end

    function setOutputNum(obj, labelNum, varargin)
      %SETOUTPUTNUM  Creates the classifier head (numOutput -> LABELNUM) of a classifier model.
      %   setOutputNum(M, K, 'Override', true) replaces an existing head.
      opts = cebra.internal.parseArgs(varargin, struct('Override', false), 'setOutputNum');
      cebra_mex('model_set_output_num', obj.Id, labelNum, cebra.internal.checkFlag(opts.Override, 'Override', 'setOutputNum'));
    end

    function n = labelNum(obj)
      %LABELNUM  Size of a classifier model's head (0 before setOutputNum); cebra:UNSUPPORTED for
      %   a model that is not a classifier.
      n = cebra_mex('model_label_num', obj.Id);
    end

    function [features, prediction] = forwardClassifier(obj, X)
      %FORWARDCLASSIFIER  [FEATURES, PREDICTION] of a classifier model with a head, one row per
      %   batch entry: FEATURES is batch x numOutput, PREDICTION batch x labelNum. X as in forward.
      [features, prediction] = cebra_mex('model_forward_classifier', obj.Id, X);
    end
  end

  methods (Static)
    function obj = fromFile(path)
      %FROMFILE  M = cebra.Model.fromFile(PATH) rebuilds the model a file written by save records.
      obj = cebra.Model(struct('cebraHandleId', cebra_mex('model_load_file', path)));
    end
  end
end
