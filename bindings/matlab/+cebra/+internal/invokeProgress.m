function [stop, message] = invokeProgress(fn, record)
%INVOKEPROGRESS  Runs the progress function of cebra.Solver/fit for the mex gateway. Internal helper.
%   The gateway calls this while the library is inside a fit, so an error must not propagate: it is
%   caught here and returned as MESSAGE (the fit then stops and fails with cebra:CALLBACK_FAILED).
%   STOP is true when FN returned logical true (any other result, or none, goes on).
stop = false;
message = '';
try
  stop = cebra.internal.askToStop(fn, record);
catch err
  message = cebra.internal.errorMessage(err);
end
end
