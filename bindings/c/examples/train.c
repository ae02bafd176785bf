/* Fits CEBRA on a synthetic recording, prints the loss, embeds the recording and streams it with the
 * trained model. argv[1] (optional): where to save the fitted solver (.safetensors). */
#include <cebra.h>
#include <math.h>
#include <stdio.h>

#define TIME 300
#define NEURONS 8
#define OUTPUT 3
#define CHECK(call) do { if ((call) != CEBRA_STATUS_OK) { fprintf(stderr, "%s: %s\n", #call, \
    cebra_last_error()); status = 1; goto done; } } while (0)

/* Called after every step; a nonzero return would stop the fit early. */
static int32_t progress(void *user_data, int64_t step, int64_t total, double loss, double align,
                        double uniform, double temperature) {
    (void)align; (void)uniform; (void)temperature;
    if (step % 5 == 0) printf("%s step %lld/%lld: loss %.4f\n", (const char *)user_data, (long long)step,
                              (long long)total, loss);
    return 0;
}

int main(int argc, char **argv) {
    static float data[TIME * NEURONS], position[TIME], embedding[TIME * OUTPUT];
    float streamed[OUTPUT];
    double loss[64];
    size_t steps = 0;
    int64_t rows = 0, lookahead = 0;
    uint8_t ready = 0;
    int status = 0;
    CebraSolver *solver = NULL;
    CebraModel *model = NULL;
    CebraStream *stream = NULL;
    /* Neurons tuned to a 1-D position that sweeps back and forth. */
    for (int t = 0; t < TIME; t++) {
        position[t] = (float)sin(t * 0.04);
        for (int n = 0; n < NEURONS; n++)
            data[t * NEURONS + n] = (float)exp(-4.0 * pow(position[t] - (n / 3.5 - 1.0), 2)) + 0.01f * (float)((t * 7 + n) % 5);
    }
    CHECK(cebra_solver_new("model_architecture=offset10-model;batch_size=64;max_iterations=20;"
                           "num_hidden_units=16;output_dimension=3;learning_rate=0.003;seed=1", &solver));
    CHECK(cebra_solver_fit(solver, data, TIME, NEURONS, CEBRA_LAYOUT_ROW_MAJOR, position, 1, NULL, progress,
                           "fit"));
    CHECK(cebra_solver_loss_history(solver, loss, 64, &steps));
    printf("%zu steps, loss %.4f -> %.4f\n", steps, loss[0], loss[steps - 1]);
    CHECK(cebra_solver_transform(solver, data, TIME, NEURONS, CEBRA_LAYOUT_ROW_MAJOR, embedding, TIME * OUTPUT, &rows));
    printf("embedding: %lld x %d, row 0 = %+.4f %+.4f %+.4f\n", (long long)rows, OUTPUT, embedding[0],
           embedding[1], embedding[2]);
    if (argc > 1) CHECK(cebra_solver_save(solver, argv[1]));
    /* The trained model, streamed one sample at a time: each output equals a row of the transform. */
    CHECK(cebra_solver_model(solver, &model));
    CHECK(cebra_stream_new(model, &stream));
    CHECK(cebra_stream_lookahead(stream, &lookahead));
    double worst = 0;
    int64_t outputs = 0;
    for (int t = 0; t < TIME; t++) {
        CHECK(cebra_stream_push(stream, data + t * NEURONS, NEURONS, streamed, OUTPUT, &ready));
        if (!ready) continue;
        for (int k = 0; k < OUTPUT; k++) {
            double d = fabs(streamed[k] - embedding[(t - lookahead) * OUTPUT + k]);
            if (d > worst) worst = d;
        }
        outputs++;
    }
    printf("streamed %lld samples, largest difference to the transform %.1e\n", (long long)outputs, worst);
done:
    cebra_stream_free(stream);
    cebra_model_free(model);
    cebra_solver_free(solver);
    return status;
}
