// Embeds a synthetic recording with offset10-model; argv[1] (optional): weights (.safetensors).
#include <cebra.hpp>
#include <cstdio>
#include <vector>

int main(int argc, char **argv) try {
    const int64_t neurons = 7, time = 16;  // at least the receptive field of 10 steps
    std::vector<float> input(neurons * time);  // (1, neurons, time)
    for (int64_t n = 0; n < neurons; n++)
        for (int64_t t = 0; t < time; t++) input[n * time + t] = float((n * 7 + t * 3) % 11) / 11.0f - 0.5f;
    cebra::manualSeed(0);
    cebra::Model model("offset10-model", neurons, 12, 3);  // freed when it goes out of scope
    if (argc > 1) model.load(argv[1]);
    cebra::Output y = model.forward(input, 1, time);  // y.values is (1, 3, y.out_time)
    std::printf("out_time = %lld\nembedding[0] =", (long long)y.out_time);
    for (int64_t k = 0; k < y.num_output; k++) std::printf(" %+.4f", y.values[k * y.out_time]);
    std::printf("\n");
    return 0;
} catch (const cebra::Error &e) {  // e.status(), e.statusName(), e.message()
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
}
