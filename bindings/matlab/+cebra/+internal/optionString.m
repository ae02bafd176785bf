function text = optionString(args)
%OPTIONSTRING  Name/value pairs as the C ABI's option string "key=value;key=value".
%   TEXT = cebra.internal.optionString({'temperature', 0.5, 'normalize', false}) gives
%   'temperature=0.5;normalize=false'. Keys are identifiers; values are logical or real numeric
%   scalars, or text without ';' or '='. Numbers keep full precision (%.17g). Internal helper.
if mod(numel(args), 2) ~= 0
  error('cebra:INVALID_ARGUMENT', 'options must be name/value pairs; got %d arguments', numel(args));
end
parts = cell(1, numel(args) / 2);
for i = 1:2:numel(args)
  key = args{i};
  value = args{i + 1};
  if ~ischar(key) || isempty(regexp(key, '^[A-Za-z_][A-Za-z0-9_]*$', 'once'))
    error('cebra:INVALID_ARGUMENT', 'option name %d must be an identifier such as ''temperature''', (i + 1) / 2);
  end
  if islogical(value) && isscalar(value)
    if value, value = 'true'; else, value = 'false'; end
  elseif isnumeric(value) && isscalar(value) && isreal(value) && ~issparse(value)
    if isinteger(value)
      value = sprintf('%d', value);
    else
      value = sprintf('%.17g', double(value));
    end
  elseif ischar(value) && (isrow(value) || isempty(value))
    if any(value == ';') || any(value == '=') || any(value == 0)
      error('cebra:INVALID_ARGUMENT', 'option ''%s'': the value must not contain '';'' or ''=''', key);
    end
  else
    error('cebra:INVALID_ARGUMENT', ...
          'option ''%s'': the value must be a logical or real numeric scalar or text, got a %s', key, class(value));
  end
  parts{(i + 1) / 2} = [key '=' value];
end
text = strjoin(parts, ';');
end
