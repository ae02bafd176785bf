% +cebra  CEBRA (consistent embeddings of high-dimensional recordings) for MATLAB and GNU Octave.
%
% Setup: addpath('<libcebra>/bindings/matlab') after `make matlab` (or the install location).
%
% Models
%   cebra.Model               - build, run (forward, transform), load and save a model
%   cebra.Stream              - online embedding, one time step at a time
%   cebra.getOptions          - registered model names
%   cebra.register            - a MATLAB function as a model
%   cebra.unregister          - remove a registered name
% Training
%   cebra.Solver              - fit CEBRA (the reference's cebra.CEBRA), transform, history, save
% Losses
%   cebra.Criterion           - InfoNCE family and nce: forward and gradients
%   cebra.dotSimilarity       - dot-product similarities
%   cebra.euclideanSimilarity - negative squared distances
%   cebra.infonce             - InfoNCE of similarities
% Runtime
%   cebra.version, cebra.abiVersion, cebra.manualSeed, cebra.setNumThreads, cebra.cudaIsAvailable
%
% Errors have identifiers cebra:<STATUS>, e.g. cebra:UNKNOWN_NAME, cebra:SHAPE_MISMATCH.
