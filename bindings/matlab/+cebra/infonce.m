function [loss, align, uniform] = infonce(posDist, negDist)
%INFONCE  The stabilised InfoNCE loss of similarities, as the reference's infonce.
%   [LOSS, ALIGN, UNIFORM] = cebra.infonce(POSDIST, NEGDIST): POSDIST has n values, NEGDIST is n x m.
%
%   Example:
%     [p, q] = cebra.dotSimilarity(ref, pos, neg);
%     loss = cebra.infonce(p, q);
%
%   See also cebra.dotSimilarity, cebra.Criterion.
[loss, align, uniform] = cebra_mex('infonce', posDist, negDist);
end
