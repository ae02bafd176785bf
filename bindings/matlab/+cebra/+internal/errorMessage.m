function message = errorMessage(err)
%ERRORMESSAGE  The text a trapped MATLAB error is reported with to the library. Internal helper.
%   The message, with the identifier in parentheses when there is one; never empty, so that the
%   library's CALLBACK_FAILED status always carries a reason.
message = err.message;
if ~isempty(err.identifier)
  message = sprintf('%s (%s)', message, err.identifier);
end
if isempty(message)
  message = 'an error without a message';
end
end
