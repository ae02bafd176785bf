function opts = parseArgs(args, defaults, context)
%PARSEARGS  Name/value pairs (names case-insensitive) over a struct of defaults. Internal helper.
%   OPTS = cebra.internal.parseArgs({'Limit', 5}, struct('Limit', 0, 'ExpandParametrized', true), 'cebra.getOptions')
opts = defaults;
names = fieldnames(defaults);
if mod(numel(args), 2) ~= 0
  error('cebra:INVALID_ARGUMENT', '%s: options must be name/value pairs', context);
end
for i = 1:2:numel(args)
  key = args{i};
  if ~ischar(key)
    error('cebra:INVALID_ARGUMENT', '%s: option names must be text', context);
  end
  match = find(strcmpi(key, names));
  if isempty(match)
    error('cebra:INVALID_ARGUMENT', '%s: unknown option ''%s'' (known: %s)', context, key, strjoin(names', ', '));
  end
  opts.(names{match}) = args{i + 1};
end
end
