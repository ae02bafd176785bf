function [posDist, negDist] = dotSimilarity(ref, pos, neg)
%DOTSIMILARITY  Dot-product similarities, as the reference's dot_similarity.
%   [POSDIST, NEGDIST] = cebra.dotSimilarity(REF, POS, NEG): REF, POS n x d, NEG m x d (one row per
%   sample); POSDIST(i) = REF(i,:)*POS(i,:)' (n x 1), NEGDIST(i,j) = REF(i,:)*NEG(j,:)' (n x m).
%
%   See also cebra.euclideanSimilarity, cebra.infonce.
[posDist, negDist] = cebra_mex('dot_similarity', ref, pos, neg);
end
