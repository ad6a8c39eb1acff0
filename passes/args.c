/* args.c — the values of a call's arguments, and the one checker that
 * matches them against what the call takes.
 *
 * Two kinds of call use it. A layer or an mmtm takes arguments: positional
 * in order or by name, values are expressions over the enclosing block's
 * parameters (`ch * 2`), and a missing one without a default is an error.
 * A construct of the train section (sgd, guided, colored_gray, ...) takes
 * options (args_options): by name, only the first may be positional, values
 * are literals, and the caller says what a missing one means. Both report
 * an unknown key with the ones allowed (and the nearest, when one is near),
 * a key given twice and a value of the wrong type, at the place of the
 * mistake, in the same words but for "argument" and "option". */
#include <stdlib.h>
#include <string.h>

#include "passes.h"

/* ---- values ----------------------------------------------------------- */
static const char *vkind_name(VKind k) {
    static const char *n[] = {"nothing", "an integer", "a number", "true/false", "a string", "a name", "a list"};
    return n[k];
}

static Val eval_binop(const AstExpr *e, Env *env) {
    Val a = args_eval(e->l, env), b = args_eval(e->r, env), r = {0};
    r.loc = e->l->loc;
    if (a.k == V_NAME) args_unknown_name(&a, env);
    if (b.k == V_NAME) args_unknown_name(&b, env);
    if ((a.k != V_INT && a.k != V_FLOAT) || (b.k != V_INT && b.k != V_FLOAT))
        error_at(e->loc, "'%c' needs two numbers, not %s and %s", e->op, vkind_name(a.k), vkind_name(b.k));
    if (a.k == V_INT && b.k == V_INT) {
        r.k = V_INT;
        long long x = a.i, y = b.i;
        switch (e->op) {
        case '+': r.i = x + y; break;
        case '-': r.i = x - y; break;
        case '*': r.i = x * y; break;
        case '/':
            if (y == 0) error_at(e->loc, "division by zero");
            if (x % y) error_at(e->loc, "%lld / %lld is not a whole number", x, y);
            r.i = x / y;
            break;
        }
        if (r.i > 2147483647LL || r.i < -2147483647LL) error_at(e->loc, "the result is too large");
        return r;
    }
    double x = a.k == V_INT ? (double)a.i : a.f, y = b.k == V_INT ? (double)b.i : b.f;
    r.k = V_FLOAT;
    switch (e->op) {
    case '+': r.f = x + y; break;
    case '-': r.f = x - y; break;
    case '*': r.f = x * y; break;
    case '/':
        if (y == 0) error_at(e->loc, "division by zero");
        r.f = x / y;
        break;
    }
    return r;
}

Val args_eval(const AstExpr *e, Env *env) {
    Val v = {0};
    v.loc = e->loc;
    switch (e->kind) {
    case AX_INT: v.k = V_INT; v.i = e->ival; break;
    case AX_FLOAT: v.k = V_FLOAT; v.f = e->fval; break;
    case AX_BOOL: v.k = V_BOOL; v.i = e->ival; break;
    case AX_STR: v.k = V_STR; v.s = e->s; break;
    case AX_NAME: break;
    case AX_CALL:
        if (e->parens) error_at(e->loc, "a call is not allowed here; expected a value");
        for (Env *x = env; x; x = x->next)
            if (strcmp(x->name, e->s) == 0) {
                v = x->val;
                v.loc = e->loc;
                return v;
            }
        v.k = V_NAME;
        v.s = e->s;
        break;
    case AX_REF: error_at(e->loc, "'%s.%s' (a branch point) is not allowed here", e->s, e->s2);
    case AX_LIST:
        v.k = V_LIST;
        v.n = e->nitems;
        v.items = NEWN(Val, e->nitems);
        for (int i = 0; i < e->nitems; i++) v.items[i] = args_eval(e->items[i], env);
        break;
    case AX_BINOP: return eval_binop(e, env);
    case AX_NEG:
        v = args_eval(e->l, env);
        if (v.k == V_INT) v.i = -v.i;
        else if (v.k == V_FLOAT) v.f = -v.f;
        else error_at(e->loc, "'-' needs a number, not %s", vkind_name(v.k));
        v.loc = e->loc;
        break;
    }
    return v;
}

/* The train section takes literal values only: a number (negative with a
 * '-'), true or false, a string or a name; no arithmetic, no parameters.
 * Anything else is V_NONE, which no type accepts. */
static Val literal(const AstExpr *e) {
    Val v = {0};
    v.loc = e->loc;
    bool neg = e->kind == AX_NEG;
    if (neg) e = e->l;
    switch (e->kind) {
    case AX_INT: v.k = V_INT; v.i = neg ? -e->ival : e->ival; break;
    case AX_FLOAT: v.k = V_FLOAT; v.f = neg ? -e->fval : e->fval; break;
    case AX_BOOL: v.k = V_BOOL; v.i = e->ival; break;
    case AX_STR: v.k = V_STR; v.s = e->s; break;
    case AX_CALL:
        if (!e->parens) {
            v.k = V_NAME;
            v.s = e->s;
        }
        break;
    case AX_LIST:
        if (neg) break;
        v.k = V_LIST;
        v.n = e->nitems;
        v.items = NEWN(Val, e->nitems);
        for (int i = 0; i < e->nitems; i++) v.items[i] = literal(e->items[i]);
        break;
    default: break;
    }
    return v;
}

static Val default_val(const ArgSpec *s, SrcLoc loc) {
    Val v = {0};
    v.loc = loc;
    const char *d = s->dflt;
    if (strcmp(d, "true") == 0 || strcmp(d, "false") == 0) { v.k = V_BOOL; v.i = d[0] == 't'; }
    else if (strchr(d, '.') || strchr(d, 'e')) { v.k = V_FLOAT; v.f = strtod(d, NULL); }
    else if ((d[0] >= '0' && d[0] <= '9') || d[0] == '-') { v.k = V_INT; v.i = strtoll(d, NULL, 10); }
    else if (d[0] == '\0') { v.k = V_NONE; }
    else { v.k = V_NAME; v.s = d; }
    return v;
}

/* A value as the user wrote it, for messages: 3.5, [3, 3, 3, 3], "x". */
const char *args_val_text(const Val *v) {
    switch (v->k) {
    case V_INT: return arena_printf(mm_arena, "%lld", v->i);
    case V_FLOAT: return arena_printf(mm_arena, "%g", v->f);
    case V_BOOL: return v->i ? "true" : "false";
    case V_STR: return arena_printf(mm_arena, "the string \"%s\"", v->s);
    case V_NAME: return arena_printf(mm_arena, "the name '%s'", v->s);
    case V_LIST: return arena_printf(mm_arena, "a list of %d", v->n);
    default: return "nothing";
    }
}

/* A name where a value is expected: an undefined block parameter, most
 * likely a typo of one. */
_Noreturn void args_unknown_name(const Val *v, Env *env) {
    const char *names[64];
    int n = 0;
    for (Env *e = env; e && n < 64; e = e->next) names[n++] = e->name;
    const char *near = nearest_name(v->s, names, n);
    if (near) error_at(v->loc, "unknown name '%s'; did you mean '%s'?", v->s, near);
    if (n) error_at(v->loc, "unknown name '%s' (the block's parameters: %s)", v->s, join_names(names, n, " and "));
    error_at(v->loc, "unknown name '%s': expected a value", v->s);
}

/* ---- matching a call against its signature ------------------------------------- */
static void check_type(const Signature *sig, bool options, const ArgSpec *s, Val *v, Env *env) {
    bool ok;
    switch (s->type) {
    case 'i': ok = v->k == V_INT; break;
    case 'f':
        ok = v->k == V_INT || v->k == V_FLOAT;
        if (v->k == V_INT) { v->k = V_FLOAT; v->f = (double)v->i; }
        break;
    case 'b': ok = v->k == V_BOOL; break;
    case 's': ok = v->k == V_STR; break;
    case 'n': ok = v->k == V_NAME; break;
    case 'l': /* a list of numbers or names, or of lists of numbers */
        ok = v->k == V_LIST && v->n > 0;
        for (int i = 0; ok && i < v->n; i++) {
            const Val *x = &v->items[i];
            ok = x->k == V_INT || x->k == V_FLOAT || x->k == V_NAME;
            if (x->k == V_LIST) {
                ok = x->n > 0;
                for (int j = 0; ok && j < x->n; j++) ok = x->items[j].k == V_INT || x->items[j].k == V_FLOAT;
            }
        }
        break;
    case 'p': /* a pair of numbers: betas=[0.9, 0.999] */
        ok = v->k == V_LIST && v->n == 2;
        for (int i = 0; ok && i < 2; i++) ok = v->items[i].k == V_INT || v->items[i].k == V_FLOAT;
        break;
    case 'k':
        ok = v->k == V_INT;
        if (v->k == V_LIST) {
            ok = v->n >= 1 && v->n <= 3;
            for (int i = 0; ok && i < v->n; i++) ok = v->items[i].k == V_INT;
        }
        break;
    default: ok = false;
    }
    if (!ok) {
        const char *want = s->type == 'i' ? "an integer" : s->type == 'f' ? "a number" : s->type == 'b' ? "true or false"
                         : s->type == 's' ? "a string in double quotes" : s->type == 'n' ? "a name"
                         : s->type == 'l' ? "a list such as [0, 6], [color, depth] or [[0.5], [0.4, 0.4, 0.4]]"
                         : s->type == 'p' ? "a pair of numbers such as [0.9, 0.999]"
                         : "an integer or a list of 1 to 3 integers";
        /* Options are literals: there is no block parameter to have misspelt. */
        if (options) error_at(v->loc, "%s: '%s' must be %s", sig->what, s->name, want);
        if (v->k == V_NAME && s->type != 'n' && s->type != 's') args_unknown_name(v, env);
        error_at(v->loc, "%s: '%s' must be %s, not %s", sig->what, s->name, want, args_val_text(v));
    }
}

static void match(const Signature *sig, bool options, const AstArgs *args, Env *env, SrcLoc call_loc, Val *out, bool *given) {
    int ns = 0;
    while (ns < ARGS_MAX && sig->spec[ns].name) ns++;
    const char *noun = options ? "option" : "argument";
    bool seen[ARGS_MAX] = {0};
    int pos = 0;
    for (int a = 0; a < args->n; a++) {
        const AstArg *arg = &args->v[a];
        int idx = -1;
        if (!arg->key && options) {
            /* sgd(0.01), rubi(c): the first option may go without its name. */
            if (a > 0 || ns == 0)
                error_at(arg->loc, "%s: give options by name, e.g. %s=...", sig->what, ns ? sig->spec[0].name : "key");
            idx = pos++;
        } else if (!arg->key) {
            if (pos >= ns) error_at(arg->loc, "%s takes at most %d argument%s", sig->what, ns, ns == 1 ? "" : "s");
            idx = pos++;
        } else {
            for (int i = 0; i < ns; i++)
                if (strcmp(sig->spec[i].name, arg->key) == 0) idx = i;
            if (idx < 0) {
                const char *names[ARGS_MAX];
                for (int i = 0; i < ns; i++) names[i] = sig->spec[i].name;
                const char *near = nearest_name(arg->key, names, ns);
                if (ns == 0) error_at(arg->loc, "%s takes no %ss", sig->what, noun);
                if (near)
                    error_at(arg->loc, "%s has no %s '%s'; did you mean '%s'? (allowed: %s)", sig->what, noun, arg->key, near,
                             join_names(names, ns, " and "));
                error_at(arg->loc, "%s has no %s '%s' (allowed: %s)", sig->what, noun, arg->key, join_names(names, ns, " and "));
            }
        }
        if (seen[idx]) error_at(arg->loc, "%s: '%s' is given twice", sig->what, sig->spec[idx].name);
        seen[idx] = true;
        out[idx] = options ? literal(arg->val) : args_eval(arg->val, env);
        check_type(sig, options, &sig->spec[idx], &out[idx], env);
    }
    for (int i = 0; i < ns; i++) {
        if (given) given[i] = seen[i];
        if (seen[i]) continue;
        if (!sig->spec[i].dflt) error_at(call_loc, "%s needs '%s'", sig->what, sig->spec[i].name);
        out[i] = default_val(&sig->spec[i], call_loc);
    }
}

void args_match(const Signature *sig, const AstArgs *args, Env *env, SrcLoc call_loc, Val *out, bool *given) {
    match(sig, false, args, env, call_loc, out, given);
}

void args_options(const Signature *sig, const AstArgs *args, SrcLoc call_loc, Val *out, bool *given) {
    match(sig, true, args, NULL, call_loc, out, given);
}
