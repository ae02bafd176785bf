function names = getOptions(pattern, varargin)
%GETOPTIONS  Registered model names, as a column cell array of text.
%   NAMES = cebra.getOptions() lists every model name (reference names first, then registered
%   MATLAB or C models), in registration order.
%   NAMES = cebra.getOptions(PATTERN) keeps the names matching the glob PATTERN ('*', '?', '[seq]').
%   NAMES = cebra.getOptions(PATTERN, 'Limit', N) gives at most N names (0 = no limit).
%   NAMES = cebra.getOptions(PATTERN, 'ExpandParametrized', false) lists each parametrized family
%   once, by its first expansion (as the reference's expand_parametrized=False).
%
%   Example:
%     cebra.getOptions('offset1*', 'Limit', 3)
%
%   See also cebra.Model, cebra.register, cebra.Criterion.getOptions.
if nargin < 1
  pattern = [];
end
opts = cebra.internal.parseArgs(varargin, struct('Limit', 0, 'ExpandParametrized', true), 'cebra.getOptions');
names = cebra_mex('get_options', pattern, opts.Limit, ...
                  cebra.internal.checkFlag(opts.ExpandParametrized, 'ExpandParametrized', 'cebra.getOptions'));
end
