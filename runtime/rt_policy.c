/* rt_policy.c — conditional learning speed, the guided/random
 * controllers (ALGORITHMS §4-§6), modality dropout's draw, OGM-GE's
 * gradient modulation, G-Blend's loss weights, AGM's scores and
 * coefficients and MMPareto's gradient integration. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rt_policy.h"

const char *rt_policy_name(int p) { return p >= 0 && p < RT_POLICY_COUNT ? rt_policies[p].name : "?"; }

void rt_speed_init(rt_speed *sp, int nb) {
    memset(sp, 0, sizeof *sp);
    sp->nb = nb;
    for (int k = 0; k < RT_MAXB; k++) sp->s[k] = NAN;
    sp->d_speed = NAN;
}

int rt_nonfinite_param(const rt_model *m, double (*norms)[2]) {
    for (int p = 0; norms && p < m->nparams; p++)
        if (!isfinite(norms[p][0]) || !isfinite(norms[p][1])) return p;
    return -1;
}

void rt_speed_add(rt_speed *sp, const rt_model *m, double (*norms)[2]) {
    double g2[2 * RT_MAXB] = {0}, w2[2 * RT_MAXB] = {0};
    for (int p = 0; p < m->nparams; p++) {
        unsigned gr = m->params[p].groups;
        for (int bit = 0; bit < 2 * sp->nb; bit++)
            if (gr & (1u << bit)) {
                g2[bit] += norms[p][0];
                w2[bit] += norms[p][1];
            }
    }
    /* mu(theta, i) = |grad|^2 / |theta|^2 over the whole group (§4). */
    for (int k = 0; k < sp->nb; k++) {
        if (w2[2 * k] > 0) sp->main_sum[k] += g2[2 * k] / w2[2 * k];
        if (w2[2 * k + 1] > 0) sp->bypass_sum[k] += g2[2 * k + 1] / w2[2 * k + 1];
    }
    double lo = INFINITY, hi = -INFINITY;
    for (int k = 0; k < sp->nb; k++) {
        sp->s[k] = sp->main_sum[k] > 0 && sp->bypass_sum[k] > 0 ? log10(sp->bypass_sum[k] / sp->main_sum[k]) : NAN;
        if (sp->s[k] < lo) lo = sp->s[k];
        if (sp->s[k] > hi) hi = sp->s[k];
    }
    /* Two branches: s_0 - s_1. More: the two most different speeds (§8), signed
     * so that it is positive when the first of them in branch order is faster. */
    if (sp->nb == 2) sp->d_speed = sp->s[0] - sp->s[1];
    else if (sp->nb > 2 && isfinite(lo) && isfinite(hi)) sp->d_speed = hi - lo;
    else sp->d_speed = NAN;
}

void rt_controller_init(rt_controller *c, const rt_config *cfg, int nb, uint64_t seed) {
    memset(c, 0, sizeof *c);
    c->policy = cfg->policy;
    c->alpha = cfg->alpha;
    c->window = cfg->window;
    c->warmup = cfg->warmup;
    c->nb = nb;
    c->rubi_branch = cfg->rubi_branch;
    c->mode = RT_STEP_REGULAR;
    rt_rng_seed(&c->rng, seed ^ 0x706f6c696379ULL);
}

int rt_controller_next(rt_controller *c, int epoch) {
    if (epoch < c->warmup) return RT_STEP_REGULAR;
    switch (c->policy) {
    case RT_POLICY_GUIDED:
        if (c->left > 0) {
            c->left--;
            return c->mode;
        }
        c->mode = RT_STEP_REGULAR;
        return RT_STEP_REGULAR;
    case RT_POLICY_RANDOM: {
        /* Uniform over {regular, re-balance branch 0, ..., branch nb-1} (§6). */
        int r = (int)rt_rng_below(&c->rng, (uint32_t)c->nb + 1);
        return r == 0 ? RT_STEP_REGULAR : r - 1;
    }
    default: return RT_STEP_REGULAR;
    }
}

void rt_controller_after_regular(rt_controller *c, int epoch, const rt_speed *sp) {
    if (c->policy != RT_POLICY_GUIDED || epoch < c->warmup || !isfinite(sp->d_speed)) return;
    if (fabs(sp->d_speed) <= c->alpha) return;
    /* Accelerate the branch whose own-modality learning lags: the one whose
     * bypass learns fastest relative to its main path (largest s_k). */
    int k = 0;
    if (sp->nb == 2) k = sp->d_speed > 0 ? 0 : 1;
    else
        for (int j = 1; j < sp->nb; j++)
            if (sp->s[j] > sp->s[k]) k = j;
    c->mode = k;
    c->left = c->window;
}

int rt_modality_drop(uint64_t seed, long j, int n, float p) {
    if (n < 2 || !(p > 0)) return -1;
    rt_rng r;
    rt_rng_seed(&r, seed ^ 0x6d6f64726f70ULL ^ (0xD1B54A32D192ED03ULL * (uint64_t)(j + 1)));
    if (rt_rng_uniform(&r) >= (double)p) return -1;
    return (int)rt_rng_below(&r, (uint32_t)n);
}

void rt_ogm_scores(const mm_real *l0, const mm_real *l1, const int32_t *y, int B, int C, double score[2]) {
    const mm_real *l[2] = {l0, l1};
    for (int k = 0; k < 2; k++) {
        score[k] = 0;
        for (int i = 0; i < B; i++) {
            const mm_real *z = l[k] + (size_t)i * C;
            double mx = z[0], sum = 0;
            for (int c = 1; c < C; c++) mx = z[c] > mx ? z[c] : mx;
            for (int c = 0; c < C; c++) sum += exp(z[c] - mx);
            score[k] += exp(z[y[i]] - mx) / sum;
        }
    }
}

double rt_ogm_from_scores(const double score[2], double alpha, double coeff[2]) {
    double rho = score[0] / score[1];
    coeff[0] = coeff[1] = 1;
    if (rho > 1) coeff[0] = 1 - tanh(alpha * fmax(rho, 0));
    else coeff[1] = 1 - tanh(alpha * fmax(1 / rho, 0));
    return rho;
}

double rt_ogm_coeffs(const mm_real *l0, const mm_real *l1, const int32_t *y, int B, int C, double alpha, double coeff[2]) {
    double score[2];
    rt_ogm_scores(l0, l1, y, B, C, score);
    return rt_ogm_from_scores(score, alpha, coeff);
}

void rt_ogm_ge(mm_real *g, size_t n, double coeff, double ge, rt_rng *r) {
    double sum = 0, sq = 0;
    for (size_t i = 0; i < n; i++) {
        g[i] = (mm_real)(g[i] * coeff);
        sum += g[i];
    }
    double mean = n ? sum / (double)n : 0;
    for (size_t i = 0; i < n; i++) sq += (g[i] - mean) * (g[i] - mean);
    double sd = ge * ((n > 1 ? sqrt(sq / (double)(n - 1)) : NAN) + 1e-8);
    if (!isfinite(sd) || ge == 0) return; /* torch's std of one element is NaN: no noise */
    for (size_t i = 0; i < n; i++) g[i] += (mm_real)(sd * rt_rng_normal(r));
}

int rt_gblend_weights(int n, const double *lt0, const double *lv0, const double *lt1, const double *lv1, double *w, double *dG,
                      double *dO) {
    double raw[RT_GBLEND_MAX], sum = 0;
    if (n > RT_GBLEND_MAX) rt_die("internal: gblend with %d loss terms (at most %d)", n, RT_GBLEND_MAX);
    for (int k = 0; k < n; k++) {
        double g = lv0[k] - lv1[k], o = (lv1[k] - lt1[k]) - (lv0[k] - lt0[k]);
        if (dG) dG[k] = g;
        if (dO) dO[k] = o;
        /* The paper's w ~ dG / dO^2 assumes a term that generalised (dG > 0);
         * one whose held-out loss rose teaches nothing that carries over. */
        raw[k] = g > 0 && isfinite(o) ? g / fmax(o * o, RT_GBLEND_EPS) : 0;
        sum += raw[k];
    }
    if (!(sum > 0) || !isfinite(sum)) return 0;
    for (int k = 0; k < n; k++) w[k] = raw[k] / sum;
    return 1;
}

void rt_agm_responses(const mm_real *total, const mm_real *pad0, const mm_real *pad1, size_t n, mm_real *phi0, mm_real *phi1) {
    for (size_t i = 0; i < n; i++) {
        phi0[i] = (mm_real)(0.5 * ((double)total[i] - pad0[i] + pad1[i]));
        phi1[i] = (mm_real)(0.5 * ((double)total[i] - pad1[i] + pad0[i]));
    }
}

double rt_agm_score(const mm_real *phi, const int32_t *y, int B, int C) {
    double sum = 0;
    for (int i = 0; i < B; i++) {
        const mm_real *z = phi + (size_t)i * C;
        double mx = z[0], se = 0;
        for (int c = 1; c < C; c++) mx = z[c] > mx ? z[c] : mx;
        for (int c = 0; c < C; c++) se += exp(z[c] - mx);
        double p = exp(z[y[i]] - mx) / se;
        sum += p < 1e-8 ? -log(1e-8) : -log(p);
    }
    return B > 0 ? sum / B : NAN;
}

void rt_agm_coeffs(const double s[2], const double avg[2], double alpha, double ratio[2], double coeff[2]) {
    double mean = (s[0] + s[1]) / 2, mean_avg = (avg[0] + avg[1]) / 2;
    for (int k = 0; k < 2; k++) {
        ratio[k] = exp(2 * (mean - s[k]));
        double optimal = exp(2 * (mean_avg - avg[k]));
        coeff[k] = exp(alpha * (optimal - ratio[k]));
    }
}

void rt_agm_average(double avg[2], const double s[2], long i) {
    for (int k = 0; k < 2; k++) avg[k] = avg[k] * (double)i / (double)(i + 1) + s[k] / (double)(i + 1);
}

double rt_clip_norm(mm_real *g, size_t n, double max_norm) {
    double sq = 0;
    for (size_t i = 0; i < n; i++) sq += (double)g[i] * g[i];
    double f = max_norm / (sqrt(sq) + 1e-6);
    if (!(f < 1)) return 1;
    for (size_t i = 0; i < n; i++) g[i] = (mm_real)(g[i] * f);
    return f;
}

double rt_mmp_weights(double mm, double mu, double uu, double alpha[2]) {
    double cos = mm > 0 && uu > 0 ? mu / sqrt(mm * uu) : 0;
    if (cos > 0) {
        alpha[0] = alpha[1] = 0.5;
        return cos;
    }
    /* min over c in [0, 1] of |c g_m + (1 - c) g_u|^2; with mu <= 0 the ends
     * are only reached when a gradient is zero. */
    double c;
    if (mu >= mm) c = 0.999;
    else if (mu >= uu) c = 0.001;
    else c = (uu - mu) / (mm + uu - 2 * mu);
    alpha[0] = c;
    alpha[1] = 1 - c;
    return cos;
}

void rt_mmp_combine(const mm_real *gm, mm_real *gu, size_t n, const double alpha[2], double gamma) {
    double sum2 = 0, h2 = 0;
    for (size_t i = 0; i < n; i++) {
        double s = (double)gm[i] + gu[i], h = 2 * (alpha[0] * gm[i] + alpha[1] * gu[i]);
        sum2 += s * s;
        h2 += h * h;
    }
    double scale = h2 > 0 ? gamma * fmax(1, sqrt(sum2 / h2)) : 0;
    for (size_t i = 0; i < n; i++) gu[i] = (mm_real)(scale * 2 * (alpha[0] * gm[i] + alpha[1] * gu[i]));
}

int rt_mmp_plan_make(const rt_model *m, rt_mmp_plan *pl, char *err, size_t errlen) {
    memset(pl, 0, sizeof *pl);
    int n = 0, heads = 0, own[RT_MAXB] = {0}, enc[RT_MAXB] = {0};
    for (int s = 0; s < m->nstates; s++) {
        if (m->states[s].kind != RT_STATE_LOSS_WEIGHT) continue;
        if (n == RT_MMP_MAXTERMS) {
            rt_set_err(err, errlen, "policy mmpareto: model '%s' has more than %d loss terms", m->name, RT_MMP_MAXTERMS);
            return -1;
        }
        const char *name = m->states[s].name + strlen("loss.weight.");
        int br = -1;
        for (int k = 0; k < m->nbranches; k++)
            if (strcmp(name, m->branches[k]) == 0) br = k;
        pl->term_off[n] = m->states[s].off;
        pl->term_branch[n] = br;
        if (br < 0) heads++;
        else own[br]++;
        n++;
    }
    pl->nterms = n;
    if (heads == 0) {
        rt_set_err(err, errlen, "policy mmpareto integrates a multi-modal loss (a fusion head's cross-entropy) with each branch's "
                   "uni-modal one, and model '%s' has no fusion head: give it one and a loss such as ce(fused) + ce(a) + ce(b) "
                   "(examples/cgmnist_late.mmnet)", m->name);
        return -1;
    }
    for (int k = 0; k < m->nbranches; k++)
        if (!own[k]) {
            rt_set_err(err, errlen, "policy mmpareto needs every branch's own loss term, and model '%s' has no ce(%s) (a uni-modal "
                       "head for it)", m->name, m->branches[k]);
            return -1;
        }
    pl->enc = malloc(sizeof(int) * (size_t)(m->nparams > 0 ? m->nparams : 1));
    if (!pl->enc) {
        rt_set_err(err, errlen, "out of memory");
        return -1;
    }
    for (int p = 0; p < m->nparams; p++) {
        unsigned t = m->params[p].loss_terms;
        int multi = 0, br = -1, nbr = 0;
        for (int i = 0; i < n; i++)
            if (t & (1u << i)) {
                if (pl->term_branch[i] < 0) multi = 1;
                else if (br != pl->term_branch[i]) br = pl->term_branch[i], nbr++;
            }
        pl->enc[p] = multi && nbr == 1 ? br : -1;
        if (pl->enc[p] >= 0) enc[br]++;
    }
    for (int k = 0; k < m->nbranches; k++)
        if (!enc[k]) {
            rt_set_err(err, errlen, "policy mmpareto: no parameter of model '%s' is read by both a fusion head's loss term and "
                       "ce(%s): branch '%s' has no encoder that the two share", m->name, m->branches[k], m->branches[k]);
            rt_mmp_plan_free(pl);
            return -1;
        }
    return 0;
}

void rt_mmp_plan_free(rt_mmp_plan *pl) {
    free(pl->enc);
    pl->enc = NULL;
}
