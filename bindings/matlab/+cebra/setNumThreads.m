function setNumThreads(n)
%SETNUMTHREADS  Number of threads libtorch uses inside one operation (at least 1).
%   cebra.setNumThreads(N)
cebra_mex('set_num_threads', n);
end
