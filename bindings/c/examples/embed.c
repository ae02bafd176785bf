/* Embeds a synthetic recording with offset10-model; argv[1] (optional): weights (.safetensors). */
#include <cebra.h>
#include <stdio.h>

#define NEURONS 7
#define UNITS 12
#define OUTPUT 3
#define TIME 16 /* at least the receptive field of 10 steps */
#define CHECK(call) do { if ((call) != CEBRA_STATUS_OK) { fprintf(stderr, "%s: %s\n", #call, \
    cebra_last_error()); cebra_model_free(model); return 1; } } while (0)

int main(int argc, char **argv) {
    static float input[NEURONS * TIME], output[OUTPUT * TIME]; /* (1, NEURONS, TIME), (1, OUTPUT, out_time) */
    CebraModel *model = NULL;
    int64_t out_time = 0;
    for (int n = 0; n < NEURONS; n++)
        for (int t = 0; t < TIME; t++) input[n * TIME + t] = (float)((n * 7 + t * 3) % 11) / 11.0f - 0.5f;
    CHECK(cebra_manual_seed(0));
    CHECK(cebra_model_init("offset10-model", NEURONS, UNITS, OUTPUT, NULL, &model));
    if (argc > 1) CHECK(cebra_model_load(model, argv[1]));
    CHECK(cebra_model_forward(model, input, 1, NEURONS, TIME, output, OUTPUT * TIME, &out_time));
    printf("out_time = %lld\nembedding[0] =", (long long)out_time);
    for (int k = 0; k < OUTPUT; k++) printf(" %+.4f", output[k * out_time]); /* channel k, step 0 */
    printf("\n");
    cebra_model_free(model);
    return 0;
}
