classdef (Hidden) Handle < handle
%HANDLE  The id of a library object held by the mex gateway, released with the MATLAB object.
%   Internal base of cebra.Criterion, cebra.Model, cebra.Solver and cebra.Stream. Objects that
%   share the library object (models built from a model, streams on it, models taken from a
%   solver) keep their own references, so releasing one never invalidates another.

  properties (SetAccess = protected, Hidden)
    Id = [];    % the gateway's handle id
  end

  methods
    function delete(obj)
      %DELETE  Releases the library object (also when the MATLAB object is cleared).
      if ~isempty(obj.Id)
        try
          cebra_mex('free', obj.Id);
        catch
          % Already released (e.g. the gateway was reset); nothing left to free.
        end
      end
    end
  end
end
