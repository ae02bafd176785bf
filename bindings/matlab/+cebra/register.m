function register(name, fn, offsetLeft, offsetRight, varargin)
%REGISTER  Registers a MATLAB function as a model, built by cebra.Model and listed by cebra.getOptions.
%   cebra.register(NAME, FN, OFFSETLEFT, OFFSETRIGHT) makes cebra.Model(NAME, NUMNEURONS, ~, NUMOUTPUT)
%   a model with receptive field OFFSETLEFT + OFFSETRIGHT whose forward pass calls
%       Y = FN(X, NUMOUTPUT, OUTTIME)      (FN may also take just X, or X and NUMOUTPUT)
%   with X a single array of size time x numNeurons x batch and OUTTIME = time - (OFFSETLEFT +
%   OFFSETRIGHT) + 1; Y must be OUTTIME x NUMOUTPUT x batch (single or double). NUMUNITS and model
%   options are ignored. An error thrown by FN makes the forward fail with cebra:CALLBACK_FAILED and
%   FN's message. Callback models are for inference only, and run on MATLAB's thread: use them from
%   MATLAB, not from threads the library starts.
%   cebra.register(..., 'Override', true) replaces an existing name (models already built keep the
%   old function); 'Deprecated', true registers a second, legacy name.
%
%   Example:
%     cebra.register('sum3', @(x, k, t) repmat(x(1:t, 1) + x(2:t+1, 1) + x(3:t+2, 1), 1, k), 1, 2);
%     m = cebra.Model('sum3', 4, 1, 2);
%     Y = forward(m, rand(10, 4));                % 8 x 2
%     cebra.unregister('sum3');                   % m keeps working
%
%   See also cebra.unregister, cebra.Model, cebra.getOptions.
if nargin < 4
  error('cebra:INVALID_ARGUMENT', 'usage: cebra.register(name, fn, offsetLeft, offsetRight, ''Override'', tf, ''Deprecated'', tf)');
end
opts = cebra.internal.parseArgs(varargin, struct('Override', false, 'Deprecated', false), 'cebra.register');
flags = 1 * cebra.internal.checkFlag(opts.Override, 'Override', 'cebra.register') + ...
        2 * cebra.internal.checkFlag(opts.Deprecated, 'Deprecated', 'cebra.register');
cebra_mex('register_callback', name, fn, offsetLeft, offsetRight, flags);
end
