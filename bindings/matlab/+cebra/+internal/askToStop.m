function stop = askToStop(fn, record)
%ASKTOSTOP  Calls a progress function of cebra.Solver/fit with the step's RECORD. Internal helper.
%   STOP is true when FN returned logical true; any other result, or none (FN may return nothing),
%   goes on. Errors propagate to the caller.
stop = false;
if nargout(fn) == 0
  fn(record);
else
  result = fn(record);
  stop = islogical(result) && isscalar(result) && result;
end
end
