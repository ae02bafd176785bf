function [y, message] = invokeCallback(fn, x, numOutput, outTime)
%INVOKECALLBACK  Runs a registered model function for the mex gateway. Internal helper.
%   The gateway calls this while the library is inside a forward pass, so an error must not
%   propagate: it is caught here and returned as MESSAGE (the forward then fails with
%   cebra:CALLBACK_FAILED carrying that message). FN is called with as many of (X, NUMOUTPUT,
%   OUTTIME) as it accepts.
y = [];
message = '';
try
  n = nargin(fn);
  if n == 1
    y = fn(x);
  elseif n == 2
    y = fn(x, numOutput);
  else
    y = fn(x, numOutput, outTime);
  end
catch err
  message = cebra.internal.errorMessage(err);
end
end
