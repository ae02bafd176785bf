function unregister(name)
%UNREGISTER  Removes a registered model name (a reference model, or one added by cebra.register).
%   cebra.unregister(NAME). Models already built from NAME keep working; the function handle of a
%   cebra.register model is released when the name and all its models are gone.
%
%   See also cebra.register.
cebra_mex('unregister', name);
end
