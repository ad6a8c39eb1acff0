/* test_policy.c — the balancing algorithms' decisions (ALGORITHMS §4-§6):
 * the conditional learning speed from given norms, and the exact sequence
 * of step kinds the guided controller produces from a given sequence of
 * d_speed values (warm-up, threshold, window Q, sign -> branch), and the
 * random controller's distribution; modality dropout's draw, OGM-GE's
 * coefficients and MMPareto's weights and integrated gradients against
 * values computed by hand. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rt_policy.h"

static rt_speed speed_with(double d) {
    rt_speed s;
    rt_speed_init(&s, 2);
    s.d_speed = d;
    s.s[0] = d / 2;
    s.s[1] = -d / 2;
    return s;
}

static void test_guided(void) {
    rt_config cfg = {0};
    cfg.policy = RT_POLICY_GUIDED;
    cfg.alpha = 0.1f;
    cfg.window = 3;
    cfg.warmup = 1;
    rt_controller c;
    rt_controller_init(&c, &cfg, 2, 1);
    /* Each row: the epoch, then d_speed after the step if it was regular. */
    struct { int epoch; double d; int expect; } seq[] = {
        {0, 0.9, RT_STEP_REGULAR},   /* warm-up: a large d_speed changes nothing */
        {0, -0.9, RT_STEP_REGULAR},
        {1, 0.05, RT_STEP_REGULAR},  /* within tolerance */
        {1, 0.30, RT_STEP_REGULAR},  /* > alpha, positive: re-balance branch 0 for Q steps */
        {1, 0, 0}, {1, 0, 0}, {1, 0, 0},
        {1, -0.2, RT_STEP_REGULAR},  /* regular again, the test is made there: branch 1 */
        {1, 0, 1}, {1, 0, 1}, {2, 0, 1}, /* a window runs across an epoch boundary */
        {2, 0.1, RT_STEP_REGULAR},   /* exactly alpha: not above it */
        {2, NAN, RT_STEP_REGULAR},   /* undefined speed: no decision */
        {2, -0.11, RT_STEP_REGULAR},
        {2, 0, 1}, {2, 0, 1}, {2, 0, 1},
        {2, 0, RT_STEP_REGULAR},
    };
    for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
        int k = rt_controller_next(&c, seq[i].epoch);
        CHECK(k == seq[i].expect, "guided step %zu: got %d, expected %d", i, k, seq[i].expect);
        if (k == RT_STEP_REGULAR) {
            rt_speed s = speed_with(seq[i].d);
            rt_controller_after_regular(&c, seq[i].epoch, &s);
        }
    }
}

static void test_random(void) {
    rt_config cfg = {0};
    cfg.policy = RT_POLICY_RANDOM;
    cfg.warmup = 1;
    rt_controller a, b;
    rt_controller_init(&a, &cfg, 2, 42);
    rt_controller_init(&b, &cfg, 2, 42);
    for (int i = 0; i < 100; i++) CHECK(rt_controller_next(&a, 0) == RT_STEP_REGULAR);
    int count[3] = {0};
    const int n = 30000;
    for (int i = 0; i < n; i++) {
        int k = rt_controller_next(&a, 1);
        CHECK(k == rt_controller_next(&b, 1)); /* deterministic for a seed */
        REQUIRE(k >= -1 && k <= 1, "random step %d: kind %d", i, k);
        count[k + 1]++;
    }
    for (int j = 0; j < 3; j++) CHECK_CLOSE(count[j] / (double)n, 1.0 / 3, 0.015, 0, "the share of step kind %d", j - 1);
}

static void test_speed(void) {
    /* Four parameters: main_0, main_1, the shared squeeze (bypass of both),
     * the excitation of branch 0 (bypass_0). */
    rt_param_info p[4] = {
        {"a", 1, {1}, 1, 0, RT_GROUP_MAIN(0), 0, 0, 0, 0},
        {"b", 1, {1}, 1, 16, RT_GROUP_MAIN(1), 1, 0, 0, 0},
        {"sq", 1, {1}, 1, 32, RT_GROUP_BYPASS(0) | RT_GROUP_BYPASS(1), -1, 0, 0, 0},
        {"e0", 1, {1}, 1, 48, RT_GROUP_BYPASS(0), 0, 0, 0, 0},
    };
    rt_model m = {0};
    m.nparams = 4;
    m.params = p;
    m.nbranches = 2;
    rt_speed s;
    rt_speed_init(&s, 2);
    double n1[4][2] = {{1, 4}, {2, 1}, {0.5, 1}, {0.5, 1}};
    double n2[4][2] = {{3, 4}, {2, 2}, {1, 2}, {0, 2}};
    rt_speed_add(&s, &m, n1);
    rt_speed_add(&s, &m, n2);
    /* mu(main_0) = 1/4, 3/4; mu(bypass_0) = (0.5+0.5)/(1+1), (1+0)/(2+2);
     * mu(main_1) = 2, 1; mu(bypass_1) = 0.5, 0.5. */
    double s0 = log10((0.5 + 0.25) / (0.25 + 0.75)), s1 = log10((0.5 + 0.5) / (2.0 + 1.0));
    CHECK_CLOSE(s.s[0], s0, 1e-12, 0);
    CHECK_CLOSE(s.s[1], s1, 1e-12, 0);
    CHECK_CLOSE(s.d_speed, s0 - s1, 1e-12, 0);
}

/* The step's check: the first parameter with a non-finite |g|^2 or
 * |w|^2, or -1 when all are finite. */
static void test_nonfinite(void) {
    rt_param_info p[3] = {{"a", 1, {1}, 1, 0, 0, 0, 0, 0, 0}, {"b", 1, {1}, 1, 16, 0, 0, 0, 0, 0}, {"c", 1, {1}, 1, 32, 0, 0, 0, 0, 0}};
    rt_model m = {0};
    m.nparams = 3;
    m.params = p;
    double ok[3][2] = {{1, 2}, {0, 0}, {1e300, 3}};
    CHECK(rt_nonfinite_param(&m, ok) == -1);
    double g[3][2] = {{1, 2}, {NAN, 1}, {INFINITY, 1}};
    CHECK(rt_nonfinite_param(&m, g) == 1);
    double w[3][2] = {{1, 2}, {1, 1}, {1, INFINITY}};
    CHECK(rt_nonfinite_param(&m, w) == 2);
    CHECK(rt_nonfinite_param(&m, NULL) == -1);
}

/* Modality dropout's draw: none at p = 0 or with one input; one input at
 * p = 1, each as often; a share p of the examples otherwise; the same
 * for the same (seed, example), another for another seed. */
static void test_modality_drop(void) {
    const int n = 40000;
    int none = 0, count[3] = {0}, same = 0;
    for (long j = 0; j < n; j++) {
        CHECK(rt_modality_drop(7, j, 2, 0) == -1);
        CHECK(rt_modality_drop(7, j, 1, 1) == -1);
        int k = rt_modality_drop(7, j, 3, 1);
        REQUIRE(k >= 0 && k < 3, "example %ld: input %d", j, k);
        count[k]++;
        int d = rt_modality_drop(7, j, 2, 0.3f);
        REQUIRE(d >= -1 && d < 2, "example %ld: input %d", j, d);
        none += d == -1;
        CHECK(d == rt_modality_drop(7, j, 2, 0.3f));
        same += d == rt_modality_drop(8, j, 2, 0.3f);
    }
    for (int k = 0; k < 3; k++) CHECK_CLOSE(count[k] / (double)n, 1.0 / 3, 0.01, 0, "the share of input %d dropped", k);
    CHECK_CLOSE(none / (double)n, 0.7, 0.01, 0, "the share of examples kept whole at p = 0.3");
    /* Independent draws for seeds 7 and 8 agree with probability 0.7^2 + 2 * 0.15^2 = 0.535. */
    CHECK_CLOSE(same / (double)n, 0.535, 0.015, 0, "draws shared by two seeds");
}

/* OGM-GE's coefficients on a batch whose scores were computed by hand
 * (Python's math): s_0 = softmax(2,0,0)[0] + softmax(0,1,0)[1] = 1.36310,
 * s_1 = 1/3 + softmax(0,0,1)[1] = 0.54527, rho = 2.49985; modality 0
 * dominates and gets 1 - tanh(0.3 rho), modality 1 keeps 1; swapped, the
 * other way round with 1 - tanh(0.3 / rho) (as the authors' code: ratio_a
 * = 1 / ratio_v, no "- 1"). Then the GE step: the gradient scaled, plus
 * noise of the scaled gradient's standard deviation. */
static void test_ogm(void) {
    const mm_real a[6] = {2, 0, 0, 0, 1, 0}, b[6] = {0, 0, 0, 0, 0, 1};
    const int32_t y[2] = {0, 1};
    double c[2];
    double rho = rt_ogm_coeffs(a, b, y, 2, 3, 0.3, c);
    CHECK_CLOSE(rho, 2.4998453982568822, 1e-6, 0);
    CHECK_CLOSE(c[0], 0.3648787183895974, 1e-6, 0);
    CHECK(c[1] == 1);
    rho = rt_ogm_coeffs(b, a, y, 2, 3, 0.3, c);
    CHECK_CLOSE(rho, 1 / 2.4998453982568822, 1e-6, 0);
    CHECK(c[0] == 1);
    CHECK_CLOSE(c[1], 1 - tanh(0.3 * 2.4998453982568822), 1e-6, 0);
    rt_ogm_coeffs(a, a, y, 2, 3, 0.3, c); /* equal scores: rho = 1, not above 1: modality 1 is damped */
    CHECK(c[0] == 1);
    CHECK_CLOSE(c[1], 1 - tanh(0.3), 1e-6, 0);

    const size_t n = 200000;
    mm_real *g = malloc(sizeof *g * n), *g0 = malloc(sizeof *g0 * n);
    for (size_t i = 0; i < n; i++) g[i] = g0[i] = (mm_real)((double)(i % 7) - 3); /* sd 2.0000 */
    rt_rng r;
    rt_rng_seed(&r, 5);
    rt_ogm_ge(g, n, 0.25, 1, &r);
    double sum = 0, sq = 0, sd = 0;
    for (size_t i = 0; i < n; i++) sd += (0.25 * g0[i]) * (0.25 * g0[i]);
    sd = sqrt(sd / (double)(n - 1));
    for (size_t i = 0; i < n; i++) {
        double e = g[i] - 0.25 * g0[i];
        sum += e, sq += e * e;
    }
    CHECK_CLOSE(sum / (double)n, 0, 0.01, 0, "the noise's mean");
    CHECK_CLOSE(sqrt(sq / (double)n), sd, 0, 0.01, "the noise's sd against the scaled gradient's, %g", sd);
    /* ge = 2 doubles the noise; ge = 0 leaves the scaled gradient exactly (OGM without GE) */
    for (size_t i = 0; i < n; i++) g[i] = g0[i];
    rt_ogm_ge(g, n, 0.25, 2, &r);
    sq = 0;
    for (size_t i = 0; i < n; i++) sq += (g[i] - 0.25 * g0[i]) * (g[i] - 0.25 * g0[i]);
    CHECK_CLOSE(sqrt(sq / (double)n), 2 * sd, 0, 0.01, "ge = 2: the noise's sd against twice the scaled gradient's");
    for (size_t i = 0; i < n; i++) g[i] = g0[i];
    rt_ogm_ge(g, n, 0.25, 0, &r);
    bool exact = true;
    for (size_t i = 0; i < n; i++) exact &= g[i] == (mm_real)(g0[i] * 0.25);
    CHECK(exact, "ge = 0: the gradient is only scaled");
    free(g), free(g0);
}

/* G-Blend's weights from losses chosen so that the arithmetic is done by
 * hand. Three terms (fused, c, g):
 *   fused: dG = 2.05 - 1.25 = 0.8,  dO = (1.25 - 1.0) - (2.05 - 2.0) = 0.2,   0.8 / 0.04   = 20
 *   c:     dG = 2.15 - 1.6 = 0.55,  dO = (1.6 - 1.5) - (2.15 - 2.1) = 0.05,  0.55 / 0.0025 = 220
 *   g:     dG = 2.3 - 2.5 = -0.2:   its held-out loss rose, weight 0
 * so w = (20, 220, 0) / 240. A term whose overfitting did not change (dO
 * = 0) has its dO^2 floored at RT_GBLEND_EPS; when no term generalised
 * the weights stay as they were. */
static void test_gblend(void) {
    const double lt0[3] = {2.0, 2.1, 2.2}, lv0[3] = {2.05, 2.15, 2.3}, lt1[3] = {1.0, 1.5, 0.8}, lv1[3] = {1.25, 1.6, 2.5};
    double w[3] = {0.5, 0.25, 0.25}, dG[3], dO[3];
    CHECK(rt_gblend_weights(3, lt0, lv0, lt1, lv1, w, dG, dO) == 1);
    CHECK_CLOSE(dG[0], 0.8, 1e-12, 0);
    CHECK_CLOSE(dG[1], 0.55, 1e-12, 0);
    CHECK_CLOSE(dG[2], -0.2, 1e-12, 0);
    CHECK_CLOSE(dO[0], 0.2, 1e-12, 0);
    CHECK_CLOSE(dO[1], 0.05, 1e-12, 0);
    CHECK_CLOSE(dO[2], 1.6, 1e-12, 0);
    CHECK_CLOSE(w[0], 20.0 / 240, 1e-12, 0);
    CHECK_CLOSE(w[1], 220.0 / 240, 1e-12, 0);
    CHECK(w[2] == 0);

    /* dO = 0: 0.5 / 1e-8 against 1 / 0.25. */
    const double a0[2] = {1, 1}, b0[2] = {2, 2}, a1[2] = {0.5, 0.5}, b1[2] = {1.5, 1.0};
    CHECK(rt_gblend_weights(2, a0, b0, a1, b1, w, NULL, NULL) == 1);
    CHECK_CLOSE(w[0], 5e7 / (5e7 + 4), 1e-12, 0);
    CHECK_CLOSE(w[1], 4 / (5e7 + 4), 1e-12, 0);

    /* Every held-out loss rose (or stayed): the weights are kept. */
    double keep[2] = {0.3, 0.7};
    CHECK(rt_gblend_weights(2, a0, b1, a1, b0, keep, dG, NULL) == 0);
    CHECK(keep[0] == 0.3 && keep[1] == 0.7);
    CHECK_CLOSE(dG[0], -0.5, 1e-12, 0);
    CHECK(rt_gblend_weights(2, a0, b0, a1, b0, keep, NULL, NULL) == 0);
    CHECK(keep[0] == 0.3 && keep[1] == 0.7);
}

/* AGM's arithmetic against values computed by hand (Python's math) on a
 * batch of 2 examples and 3 classes: the multi-modal output, the outputs
 * with modality 0 and with modality 1 zeroed; the Shapley responses
 * phi_0 = (total - pad0 + pad1) / 2, phi_1 = (total - pad1 + pad0) / 2;
 * their scores (mean -log softmax at the label); against running means
 * 0.9 and 1.3 with alpha 0.7, the ratios exp(s_other - s_k), the optimal
 * ratios exp(avg_other - avg_k) and the coefficients exp(alpha (optimal -
 * ratio)); the running means after step 5; a probability below 1e-8 counts
 * as 1e-8. */
static void test_agm(void) {
    const mm_real total[6] = {1, 0, -1, 0.5f, 2, 0}, pad0[6] = {0, 0, 0, 0, 1, 0}, pad1[6] = {1, 1, 0, 0, 0, 0.5f};
    const mm_real want0[6] = {1, 0.5f, -0.5f, 0.25f, 0.5f, 0.25f}, want1[6] = {0, -0.5f, -0.5f, 0.25f, 1.5f, -0.25f};
    const int32_t y[2] = {0, 1};
    mm_real phi0[6], phi1[6];
    rt_agm_responses(total, pad0, pad1, 6, phi0, phi1);
    for (int i = 0; i < 6; i++) {
        CHECK(phi0[i] == want0[i], "phi_0[%d] = %g, not %g", i, (double)phi0[i], (double)want0[i]);
        CHECK(phi1[i] == want1[i], "phi_1[%d] = %g, not %g", i, (double)phi1[i], (double)want1[i]);
    }
    double s[2] = {rt_agm_score(phi0, y, 2, 3), rt_agm_score(phi1, y, 2, 3)};
    CHECK_CLOSE(s[0], 0.7716002682243236, 1e-12, 0);
    CHECK_CLOSE(s[1], 0.5865020524681726, 1e-12, 0);
    double avg[2] = {0.9, 1.3}, ratio[2], coeff[2];
    rt_agm_coeffs(s, avg, 0.7, ratio, coeff);
    CHECK_CLOSE(ratio[0], 0.8310226603248707, 1e-12, 0);
    CHECK_CLOSE(ratio[1], 1.2033366209401215, 1e-12, 0);
    CHECK_CLOSE(coeff[0], 1.5881366743961391, 1e-12, 0);
    CHECK_CLOSE(coeff[1], 0.6885883804168919, 1e-12, 0);
    rt_agm_average(avg, s, 5);
    CHECK_CLOSE(avg[0], 0.878600044704054, 1e-12, 0);
    CHECK_CLOSE(avg[1], 1.181083675411362, 1e-12, 0);
    /* The first step: the means are the scores themselves; equal scores
     * and equal means: every coefficient is 1. */
    double a0[2] = {123, -4};
    rt_agm_average(a0, s, 0);
    CHECK(a0[0] == s[0] && a0[1] == s[1]);
    const double eq[2] = {0.4, 0.4}, eqavg[2] = {2, 2};
    rt_agm_coeffs(eq, eqavg, 3, ratio, coeff);
    CHECK(ratio[0] == 1 && ratio[1] == 1 && coeff[0] == 1 && coeff[1] == 1);
    /* softmax(0, 40, 0)[0] = 4.2e-18: the score is -log(1e-8) = 18.4207. */
    const mm_real far[3] = {0, 40, 0};
    const int32_t y0[1] = {0};
    CHECK_CLOSE(rt_agm_score(far, y0, 1, 3), 18.420680743952367, 1e-12, 0);
}

/* clip_grad_norm_: a gradient of norm 5 (3, 4) clipped to 1 becomes
 * (3, 4) / (5 + 1e-6); one already within the limit is left alone. */
static void test_clip_norm(void) {
    mm_real g[2] = {3, 4};
    double f = rt_clip_norm(g, 2, 1);
    CHECK_CLOSE(f, 1 / (5 + 1e-6), 1e-12, 0);
    CHECK_CLOSE(g[0], 3 / (5 + 1e-6), 1e-7, 0);
    CHECK_CLOSE(g[1], 4 / (5 + 1e-6), 1e-7, 0);
    mm_real h[2] = {0.3f, 0.4f};
    CHECK(rt_clip_norm(h, 2, 1) == 1 && h[0] == 0.3f && h[1] == 0.4f);
}

/* MMPareto: two gradients in conflict, g_m = (1, 0), g_u = (-1, 1): mm 1,
 * uu 2, mu -1, cos -1/sqrt(2); the point of least norm on the segment is
 * c g_m + (1 - c) g_u with c = (uu - mu) / (mm + uu - 2 mu) = 3/5: (0.2,
 * 0.4), orthogonal to g_m - g_u. h = 2 (0.6 g_m + 0.4 g_u) = (0.4, 0.8) is
 * shorter than g_m + g_u = (0, 1), so it is scaled to |g_m + g_u| = 1:
 * (1, 2) / sqrt(5), then times gamma 1.5. Not in conflict, g_m = (1, 2),
 * g_u = (3, -1) (mu 1): equal weights, h = g_m + g_u, times gamma. A tensor
 * whose h is longer than its g_m + g_u keeps h (times gamma): the scaling
 * only lengthens. A zero gradient takes the solver's end (0.999). */
static void test_mmpareto(void) {
    double a[2];
    double cos = rt_mmp_weights(1, -1, 2, a);
    CHECK_CLOSE(cos, -1 / sqrt(2.0), 1e-12, 0);
    CHECK_CLOSE(a[0], 0.6, 1e-12, 0);
    CHECK_CLOSE(a[1], 0.4, 1e-12, 0);
    mm_real gm[2] = {1, 0}, gu[2] = {-1, 1};
    rt_mmp_combine(gm, gu, 2, a, 1.5);
    CHECK_CLOSE(gu[0], 1.5 / sqrt(5.0), 1e-6, 0, "%g", gu[0]);
    CHECK_CLOSE(gu[1], 3 / sqrt(5.0), 1e-6, 0, "%g", gu[1]);

    cos = rt_mmp_weights(5, 1, 10, a);
    CHECK_CLOSE(cos, 1 / sqrt(50.0), 1e-12, 0);
    CHECK(a[0] == 0.5 && a[1] == 0.5);
    mm_real gm2[2] = {1, 2}, gu2[2] = {3, -1};
    rt_mmp_combine(gm2, gu2, 2, a, 1.5);
    CHECK_CLOSE(gu2[0], 6, 1e-6, 0);
    CHECK_CLOSE(gu2[1], 1.5, 1e-6, 0);

    /* The weights (0.6, 0.4) of the conflict above on a tensor where g_m
     * and g_u cancel: h = 0.4, g_m + g_u = 0, so h stays, times gamma. */
    const double w[2] = {0.6, 0.4};
    mm_real gm3[1] = {1}, gu3[1] = {-1};
    rt_mmp_combine(gm3, gu3, 1, w, 1.5);
    CHECK_CLOSE(gu3[0], 0.6, 1e-6, 0);

    /* cos exactly 0 counts as a conflict (the code's test is cos > 0). */
    rt_mmp_weights(1, 0, 3, a);
    CHECK_CLOSE(a[0], 0.75, 1e-12, 0);
    /* g_m zero: the solver's end, 0.999 on g_m, and the result is gamma g_u. */
    cos = rt_mmp_weights(0, 0, 25, a);
    CHECK(cos == 0);
    CHECK_CLOSE(a[0], 0.999, 1e-12, 0);
    mm_real gm4[2] = {0, 0}, gu4[2] = {3, 4};
    rt_mmp_combine(gm4, gu4, 2, a, 1.5);
    CHECK_CLOSE(gu4[0], 4.5, 1e-5, 0);
    CHECK_CLOSE(gu4[1], 6, 1e-5, 0);
    mm_real z[2] = {0, 0}, z2[2] = {0, 0};
    rt_mmp_combine(z, z2, 2, a, 1.5);
    CHECK(z2[0] == 0 && z2[1] == 0);
}

/* MMPareto's plan of a model: terms from the loss-weight states (fused,
 * x, y: bits 0, 1, 2 of loss_terms), and the encoders: read by the fused
 * term and exactly one branch's own. A parameter that both branch terms
 * read (an MMTM's) and the heads belong to none. Models without a fusion
 * head, or without a branch's term, or whose branch shares nothing with
 * the fusion head, are refused with the reason. */
static void test_mmpareto_plan(void) {
    rt_param_info p[6] = {
        {"x.conv.weight", 1, {1}, 1, 0, RT_GROUP_MAIN(0), 0, 0, 0, 0x3},
        {"x.head.weight", 1, {1}, 1, 16, RT_GROUP_MAIN(0), 0, 0, 0, 0x2},
        {"y.conv.weight", 1, {1}, 1, 32, RT_GROUP_MAIN(1), 1, 0, 0, 0x5},
        {"y.head.weight", 1, {1}, 1, 48, RT_GROUP_MAIN(1), 1, 0, 0, 0x4},
        {"mmtm.sq.weight", 1, {1}, 1, 64, RT_GROUP_BYPASS(0) | RT_GROUP_BYPASS(1), -1, 0, 0, 0x7},
        {"fused.weight", 1, {1}, 1, 80, 0, -1, 0, 0, 0x1},
    };
    rt_state_info st[4] = {
        {"x.bn.running_mean", 1, {1}, 1, 0, RT_STATE_BN_MEAN, 0},
        {"loss.weight.fused", 1, {1}, 1, 16, RT_STATE_LOSS_WEIGHT, 1},
        {"loss.weight.x", 1, {1}, 1, 32, RT_STATE_LOSS_WEIGHT, 0.5f},
        {"loss.weight.y", 1, {1}, 1, 48, RT_STATE_LOSS_WEIGHT, 0.5f},
    };
    const char *const br[2] = {"x", "y"};
    rt_model m = {0};
    m.name = "late";
    m.nparams = 6, m.params = p;
    m.nstates = 4, m.states = st;
    m.nbranches = 2, m.branches = br;
    rt_mmp_plan pl;
    char err[512];
    REQUIRE(rt_mmp_plan_make(&m, &pl, err, sizeof err) == 0, "%s", err);
    CHECK(pl.nterms == 3);
    CHECK(pl.term_off[0] == 16 && pl.term_off[1] == 32 && pl.term_off[2] == 48);
    CHECK(pl.term_branch[0] == -1 && pl.term_branch[1] == 0 && pl.term_branch[2] == 1);
    const int want[6] = {0, -1, 1, -1, -1, -1};
    for (int i = 0; i < 6; i++) CHECK(pl.enc[i] == want[i], "%s: encoder %d, want %d", p[i].name, pl.enc[i], want[i]);
    rt_mmp_plan_free(&pl);

    m.nstates = 1; /* the MMTM net's plain ce(x) + ce(y): no loss-weight state, no fusion head */
    CHECK(rt_mmp_plan_make(&m, &pl, err, sizeof err) != 0);
    CHECK_ERR(err, "late", "has no fusion head");
    rt_state_info st2[2] = {st[1], st[2]}; /* ce(fused) + ce(x): y has no term of its own */
    m.nstates = 2, m.states = st2;
    CHECK(rt_mmp_plan_make(&m, &pl, err, sizeof err) != 0);
    CHECK_ERR(err, "late", "has no ce(y)");
    m.nstates = 4, m.states = st;
    p[2].loss_terms = 0x4; /* y's conv read by its own term only: nothing shared with the fusion head */
    CHECK(rt_mmp_plan_make(&m, &pl, err, sizeof err) != 0);
    CHECK_ERR(err, "late", "branch 'y' has no encoder");
}

int main(void) {
    test_guided();
    test_random();
    test_speed();
    test_nonfinite();
    test_modality_drop();
    test_ogm();
    test_gblend();
    test_agm();
    test_clip_norm();
    test_mmpareto();
    test_mmpareto_plan();
    return check_summary("test_policy (guided sequence, random distribution, conditional learning speed, the non-finite check, modality dropout, OGM-GE, "
                         "G-Blend, AGM, MMPareto)");
}
