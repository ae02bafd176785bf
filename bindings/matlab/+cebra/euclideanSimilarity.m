function [posDist, negDist] = euclideanSimilarity(ref, pos, neg)
%EUCLIDEANSIMILARITY  Negative squared Euclidean distances, shaped as in cebra.dotSimilarity.
%   [POSDIST, NEGDIST] = cebra.euclideanSimilarity(REF, POS, NEG)
%
%   See also cebra.dotSimilarity, cebra.infonce.
[posDist, negDist] = cebra_mex('euclidean_similarity', ref, pos, neg);
end
