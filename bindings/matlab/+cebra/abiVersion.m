function [library, compiled] = abiVersion()
%ABIVERSION  Binary interface version of the loaded library (and of the header the mex was built with).
%   [LIBRARY, COMPILED] = cebra.abiVersion(); the two differ only when the mex is run against a
%   library it was not built for (rebuild it with `make matlab`).
%
%   See also cebra.version.
[library, compiled] = cebra_mex('abi_version');
end
