classdef Stream < cebra.internal.Handle
%STREAM  Online embedding of a recording, one time step at a time.
%
%   S = cebra.Stream(M) starts a stream on the model M (a cebra.Model; S keeps the model alive).
%   [Y, READY] = push(S, X) feeds the rows of X (samples x neurons, in time order). Y has one row
%   (1 x numOutput) per push that completed an embedding, READY says which pushes did. Counting
%   pushes from k = 0, push k gives nothing while k < L - 1 (L = left + right, the receptive field),
%   then the embedding of time step k - lookahead(S): with X the whole recording, the rows of Y are
%   transform(M, X, 'Pad', false), and row k - lookahead of transform(M, X) (padded).
%   D = lookahead(S) is right - 1 of the model's offset: how many steps an embedding lags.
%   reset(S) starts over (a new recording). Models that resample are not supported (cebra:UNSUPPORTED).
%
%   Example:
%     m = cebra.Model('offset10-model', 7, 12, 3);
%     s = cebra.Stream(m);
%     for t = 1:100
%       [y, ready] = push(s, randn(1, 7));   % y is 1 x 3 once ready
%     end
%
%   See also cebra.Model.

  methods
    function obj = Stream(model)
      if nargin < 1 || ~isa(model, 'cebra.Model')
        error('cebra:INVALID_ARGUMENT', 'usage: cebra.Stream(model), model a cebra.Model');
      end
      obj.Id = cebra_mex('stream_new', model.Id);
    end

    function [Y, ready] = push(obj, X)
      %PUSH  [Y, READY] = push(S, X): feeds the rows of X; Y holds the embeddings that became ready.
      [Y, ready] = cebra_mex('stream_push', obj.Id, X);
    end

    function steps = lookahead(obj)
      %LOOKAHEAD  Steps an embedding lags behind the newest sample (right - 1 of the offset).
      steps = cebra_mex('stream_lookahead', obj.Id);
    end

    function reset(obj)
      %RESET  Forgets the pushed samples; the next push starts a new recording.
      cebra_mex('stream_reset', obj.Id);
    end
  end
end
