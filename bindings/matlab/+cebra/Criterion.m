classdef Criterion < cebra.internal.Handle
%CRITERION  A CEBRA contrastive loss (InfoNCE family or nce).
%
%   C = cebra.Criterion(NAME) builds the criterion NAME: 'fixed-cosine-infonce',
%   'fixed-euclidean-infonce', 'learnable-cosine-infonce', 'learnable-euclidean-infonce', 'nce',
%   or the aliases 'infonce' and 'infomse' (cebra.Criterion.getOptions lists them).
%   C = cebra.Criterion(NAME, 'KEY', VALUE, ...) sets options: 'temperature' (default 1),
%   'min_temperature' (learnable only), 'negative_weight' and 'reduce' ('mean' or 'sum', nce only).
%
%   Samples are rows: REF and POS are n x d, NEG is m x d (single or double).
%     [LOSS, ALIGN, UNIFORM] = forward(C, REF, POS, NEG)   scalars (InfoNCE family) or n x 1 (nce)
%     [LOSS, GREF, GPOS, GNEG, GLIT] = backward(C, REF, POS, NEG)
%         the scalar training minimises and its gradients (n x d, n x d, m x d); GLIT is the
%         gradient for the log inverse temperature of learnable criterions ([] otherwise)
%     T = temperature(C)
%
%   Example:
%     c = cebra.Criterion('infonce', 'temperature', 0.5);
%     ref = randn(32, 8); pos = ref + 0.1 * randn(32, 8); neg = randn(32, 8);
%     [loss, align, uniform] = forward(c, ref, pos, neg);
%     [loss, gradRef] = backward(c, ref, pos, neg);
%
%   See also cebra.dotSimilarity, cebra.infonce, cebra.Model.

  properties (SetAccess = private)
    Name = '';  % criterion name
  end
  methods
    function obj = Criterion(name, varargin)
      if nargin < 1
        error('cebra:INVALID_ARGUMENT', 'usage: cebra.Criterion(name, ''key'', value, ...)');
      end
      obj.Id = cebra_mex('criterion_init', name, cebra.internal.optionString(varargin));
      obj.Name = name;
    end

    function [loss, align, uniform] = forward(obj, ref, pos, neg)
      %FORWARD  [LOSS, ALIGN, UNIFORM] = forward(C, REF, POS, NEG), samples as rows.
      [loss, align, uniform] = cebra_mex('criterion_forward', obj.Id, ref, pos, neg);
    end

    function [loss, gradRef, gradPos, gradNeg, gradLogInverseTemperature] = backward(obj, ref, pos, neg)
      %BACKWARD  The training loss and its gradients; only the requested outputs are computed.
      n = max(nargout, 1);
      out = cell(1, n);
      [out{:}] = cebra_mex('criterion_backward', obj.Id, ref, pos, neg);
      loss = out{1};
      if n > 1, gradRef = out{2}; end
      if n > 2, gradPos = out{3}; end
      if n > 3, gradNeg = out{4}; end
      if n > 4, gradLogInverseTemperature = out{5}; end
    end

    function t = temperature(obj)
      %TEMPERATURE  The current temperature.
      t = cebra_mex('criterion_get_temperature', obj.Id);
    end
  end

  methods (Static)
    function names = getOptions(pattern, varargin)
      %GETOPTIONS  Criterion names matching PATTERN (glob; [] or omitted = all), a cell array.
      %   names = cebra.Criterion.getOptions('learnable-*', 'Limit', 1)
      if nargin < 1, pattern = []; end
      opts = cebra.internal.parseArgs(varargin, struct('Limit', 0), 'cebra.Criterion.getOptions');
      names = cebra_mex('criterion_get_options', pattern, opts.Limit);
    end
  end
end
