function manualSeed(seed)
%MANUALSEED  Seeds the generator that model initialisation (and dropout) draw from.
%   cebra.manualSeed(SEED), SEED a non-negative integer (uint64 for seeds above 2^53).
%
%   Example:
%     cebra.manualSeed(42); a = cebra.Model('offset10-model', 7, 12, 3);
%     cebra.manualSeed(42); b = cebra.Model('offset10-model', 7, 12, 3);   % same weights as a
cebra_mex('manual_seed', seed);
end
