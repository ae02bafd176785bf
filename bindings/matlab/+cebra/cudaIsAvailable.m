function tf = cudaIsAvailable()
%CUDAISAVAILABLE  True when the library can use a CUDA device.
%   TF = cebra.cudaIsAvailable()
tf = cebra_mex('cuda_is_available');
end
