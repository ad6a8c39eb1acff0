/* rt_policy.h — the balancing algorithms' decisions (ALGORITHMS §4-§6),
 * kept apart from the training loop so that tests can drive them with
 * given d_speed sequences. */
#ifndef RT_POLICY_H
#define RT_POLICY_H

#include "mmrt.h"

#define RT_STEP_REGULAR (-1)   /* otherwise: the branch re-balanced */

/* The policy's name (RT_POLICIES) for RT_POLICY_*; "?" otherwise. */
const char *rt_policy_name(int policy);

/* Conditional learning speed (§4): sums of mu = |grad|^2 / |param|^2 per
 * group over the regular steps so far. */
typedef struct {
    int nb;
    double main_sum[RT_MAXB], bypass_sum[RT_MAXB];
    double s[RT_MAXB];         /* s_k = log10(bypass_k / main_k); NAN until defined */
    double d_speed;            /* the spread between the two most different speeds */
} rt_speed;

void rt_speed_init(rt_speed *sp, int nb);
/* Add one regular step: norms[p] = {|g|^2, |w|^2} of every parameter. */
void rt_speed_add(rt_speed *sp, const rt_model *m, double (*norms)[2]);
/* The first parameter whose |g|^2 or |w|^2 in norms is not finite, or -1:
 * a step that made it so stops the run, even where the loss stayed finite. */
int rt_nonfinite_param(const rt_model *m, double (*norms)[2]);

typedef struct {
    int policy;                /* RT_POLICY_* */
    float alpha;
    int window, warmup;        /* warmup in epochs */
    int nb;
    int rubi_branch;
    int mode;                  /* RT_STEP_REGULAR or the branch of the window in progress */
    int left;                  /* re-balancing steps left in the window */
    rt_rng rng;                /* random policy */
} rt_controller;

void rt_controller_init(rt_controller *c, const rt_config *cfg, int nb, uint64_t seed);
/* The kind of the next step: RT_STEP_REGULAR or a branch to re-balance. */
int rt_controller_next(rt_controller *c, int epoch);
/* After a regular step: the guided test |d_speed| > alpha opens a window of
 * `window` re-balancing steps for the branch whose s is largest. */
void rt_controller_after_regular(rt_controller *c, int epoch, const rt_speed *sp);

/* Modality dropout (docs/methods.md): the input that training example j
 * of a pass drawn from seed loses, or -1 for none. With probability p one
 * of the n inputs, each as likely, is zeroed; never more than one, so
 * every example keeps a modality. Depends on (seed, j) only, so a run is
 * the same with any number of loader threads. */
int rt_modality_drop(uint64_t seed, long j, int n, float p);

/* OGM-GE (Peng et al., CVPR 2022; docs/methods.md), two modalities: the
 * scores s_k = sum over the batch of softmax(logits_k)[label], rho = s_0 /
 * s_1, and the coefficients: the dominant modality's 1 - tanh(alpha *
 * relu(rho)) (rho > 1: modality 0; else 1 / rho for modality 1), the
 * other's 1. Returns rho. */
double rt_ogm_coeffs(const mm_real *l0, const mm_real *l1, const int32_t *y, int B, int C, double alpha, double coeff[2]);
/* The same in two halves, for a batch cut across data-parallel ranks: each
 * rank's scores (summed over the ranks before the second), and the ratio
 * and coefficients from the whole batch's. */
void rt_ogm_scores(const mm_real *l0, const mm_real *l1, const int32_t *y, int B, int C, double score[2]);
double rt_ogm_from_scores(const double score[2], double alpha, double coeff[2]);
/* One parameter's gradient g[0..n): g *= coeff, then the generalisation
 * enhancement g += N(0, sd^2) per element, sd = the (n - 1) standard
 * deviation of the scaled g, + 1e-8, times ge (0: no noise, OGM alone). */
void rt_ogm_ge(mm_real *g, size_t n, double coeff, double ge, rt_rng *r);

/* G-Blend (Wang, Tran, Feiszli, CVPR 2020; docs/methods.md): the weights
 * of n loss terms from each term's training and validation losses at the
 * start (lt0, lv0) and the end (lt1, lv1) of a super-epoch:
 *   dG_k = lv0_k - lv1_k                               generalisation gained
 *   dO_k = (lv1_k - lt1_k) - (lv0_k - lt0_k)           overfitting gained
 *   w_k  = max(dG_k, 0) / max(dO_k^2, RT_GBLEND_EPS)   then divided by their sum.
 * A term whose validation loss did not fall gets 0. When no term's did,
 * w keeps its values and 0 is returned; else 1. dG, dO (NULL: not wanted)
 * receive each term's values. */
#define RT_GBLEND_EPS 1e-8
#define RT_GBLEND_MAX (2 * RT_MAXB) /* loss terms */
int rt_gblend_weights(int n, const double *lt0, const double *lv0, const double *lt1, const double *lv1, double *w, double *dG,
                      double *dO);
/* AGM (Li et al., ICCV 2023; docs/methods.md), two modalities. From the
 * multi-modal output on the whole batch (total) and on the batch with
 * modality 0 or 1 zeroed (pad0, pad1), n = B * C values each, the Shapley
 * mono-modal responses
 *     phi_0 = (total - pad0 + pad1) / 2,   phi_1 = (total - pad1 + pad0) / 2. */
void rt_agm_responses(const mm_real *total, const mm_real *pad0, const mm_real *pad1, size_t n, mm_real *phi0, mm_real *phi1);
/* A response's score: the mean over the batch of -log softmax(phi)[label],
 * each term at most -log(1e-8) (a probability below 1e-8 counts as 1e-8). */
double rt_agm_score(const mm_real *phi, const int32_t *y, int B, int C);
/* The ratios and coefficients of a step from its scores s and the running
 * means avg of the earlier steps' scores:
 *     ratio_k   = exp(2 (mean(s) - s_k))        (two modalities: exp(s_other - s_k))
 *     optimal_k = exp(2 (mean(avg) - avg_k))
 *     coeff_k   = exp(alpha (optimal_k - ratio_k)) */
void rt_agm_coeffs(const double s[2], const double avg[2], double alpha, double ratio[2], double coeff[2]);
/* torch.nn.utils.clip_grad_norm_(max_norm) over g[0..n): when the L2 norm of
 * g exceeds max_norm, g *= max_norm / (norm + 1e-6). Returns the factor
 * applied (1: none). */
double rt_clip_norm(mm_real *g, size_t n, double max_norm);
/* The running means after step i (counted from 0): avg = (avg i + s) / (i + 1). */
void rt_agm_average(double avg[2], const double s[2], long i);
/* MMPareto (Wei & Hu, ICML 2024; docs/methods.md) on a model: its loss
 * terms, read off the loss-weight states (loss.weight.NAME, NAME a branch
 * or a fusion head, in the loss's order), and each parameter's encoder:
 * branch k's encoder is the parameters that a fusion head's term and
 * branch k's own term read, and no other branch's term. The rest (the
 * heads) take the loss's plain gradient. */
#define RT_MMP_MAXTERMS 32
typedef struct {
    int nterms;
    size_t term_off[RT_MMP_MAXTERMS];  /* the weight's offset in the state arena */
    int term_branch[RT_MMP_MAXTERMS];  /* the term's branch, -1 for a fusion head (multi-modal) */
    int *enc;                          /* per parameter: the branch of its encoder, or -1 */
} rt_mmp_plan;
/* 0; or -1 with why the model cannot take the policy in err (no fusion
 * head, a branch without its own term, a branch without an encoder). */
int rt_mmp_plan_make(const rt_model *m, rt_mmp_plan *pl, char *err, size_t errlen);
void rt_mmp_plan_free(rt_mmp_plan *pl);

/* MMPareto, one encoder: from the
 * dot products of its multi-modal and uni-modal gradients, mm = g_m.g_m,
 * mu = g_m.g_u, uu = g_u.g_u, the weights alpha[0] (multi-modal) and
 * alpha[1] (uni-modal): 1/2 each when cos(g_m, g_u) > 0, else the point of
 * least norm on the segment between them (Sener & Koltun's two-vector
 * solution, whose ends the authors' code takes as 0.999 and 0.001).
 * Returns the cosine (0 when either gradient is zero). */
double rt_mmp_weights(double mm, double mu, double uu, double alpha[2]);
/* One parameter of that encoder, gu[0..n) replaced by its integrated
 * gradient: h = 2 (alpha[0] gm + alpha[1] gu), scaled up to the norm of
 * gm + gu when it is shorter, times gamma:
 *   gamma * max(1, |gm + gu| / |h|) * h       (0 when h is 0) */
void rt_mmp_combine(const mm_real *gm, mm_real *gu, size_t n, const double alpha[2], double gamma);

#endif
