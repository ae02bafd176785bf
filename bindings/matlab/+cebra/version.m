function v = version()
%VERSION  The libcebra version, e.g. '0.1.0'.
%   V = cebra.version()
%
%   See also cebra.abiVersion.
v = cebra_mex('version');
end
