# Embeds a synthetic recording with offset10-model, whole and streamed; ARGS[1] (optional): weights
# (.safetensors).
using Cebra

neurons, time = 7, 16                      # at least the receptive field of 10 steps
x = [Float32((n * 7 + t * 3) % 11) / 11 - 0.5f0 for t in 0:time-1, n in 0:neurons-1]  # time × neurons
Cebra.manual_seed!(0)
model = Model("offset10-model", neurons, 12, 3)   # freed by the GC, or now with close(model)
isempty(ARGS) || load!(model, ARGS[1])
y = forward(model, x)                      # out_time × 3
println("out_time = ", size(y, 1))
println("embedding[0] = ", join((string(v >= 0 ? "+" : "", round(v; digits = 4)) for v in y[1, :]), " "))
z = transform(model, x)                    # time × 3: a row per step (edges padded), as CEBRA.transform
stream = Stream(model)                     # the same rows one step at a time, as samples arrive
rows = [push!(stream, x[t, :]) for t in 1:time]  # nothing for the first 9 steps
println("stream = transform: ", all(rows[t] ≈ z[t-lookahead(stream), :] for t in 10:time))
close(stream)
close(model)
