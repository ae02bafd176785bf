function value = checkFlag(value, name, context)
%CHECKFLAG  A logical or 0/1 scalar, as logical. Internal helper.
if ~((islogical(value) || isnumeric(value)) && isscalar(value) && isreal(value) && (value == 0 || value == 1))
  error('cebra:INVALID_ARGUMENT', '%s: ''%s'' must be true or false', context, name);
end
value = logical(value);
end
