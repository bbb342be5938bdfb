/* One decode step of a Llama-architecture model for B cache rows, in one call: no per-op dispatch.
 *
 * Why: torch runs the step as ~900 small ops; at SmolLM2-135M's size their dispatch and the 121 int4 matmul calls'
 * thread barriers cost more than the arithmetic. Here the whole step is plain loops over the checkpoint's own
 * Q4_1 blocks (32 four-bit values, a float32 step and minimum: w = q * d + m), float32 activations throughout, so
 * it computes what transformers' float32 forward over the same weights computes (up to summation order).
 *
 * A row's result does not depend on the batch it ran in: one stream and a batch compute every output with the same
 * operations in the same order (one vector accumulator per output, blocks in order, one final reduction).
 *
 * Layout (made by emulator/engine/native.py from the packed weights):
 *   a Q4_1 matrix [out, in] (out a multiple of TILE): 24-byte block records in tiles (see `matmul_q4`).
 *   The embedding table: int8 [vocab, hidden] and one float32 scale per 32 values (Q8_0: w = q * d).
 *   KV cache: per layer float32 [rows, kv_heads, capacity, head_dim], shared with the torch prefill.
 * Every `in` is a multiple of 32, every `out` of TILE.
 */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX512F__)
#include <immintrin.h>
typedef __m512 vf;
#define VW 16
#define vzero() _mm512_setzero_ps()
#define vload(p) _mm512_loadu_ps(p)
#define vstore(p, v) _mm512_storeu_ps(p, v)
#define vset1(x) _mm512_set1_ps(x)
#define vfma(a, b, c) _mm512_fmadd_ps(a, b, c)
#define vsum(v) _mm512_reduce_add_ps(v)
static inline void q4_ints(const uint8_t *q, vf *out) {
    __m128i raw = _mm_loadu_si128((const __m128i *)q), mask = _mm_set1_epi8(0x0f);
    out[0] = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(raw, mask)));
    out[1] = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(raw, 4), mask)));
}
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
typedef __m256 vf;
#define VW 8
#define vzero() _mm256_setzero_ps()
#define vload(p) _mm256_loadu_ps(p)
#define vstore(p, v) _mm256_storeu_ps(p, v)
#define vset1(x) _mm256_set1_ps(x)
#define vfma(a, b, c) _mm256_fmadd_ps(a, b, c)
static inline float vsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline void q4_ints(const uint8_t *q, vf *out) {
    __m128i raw = _mm_loadu_si128((const __m128i *)q), mask = _mm_set1_epi8(0x0f);
    __m128i lo = _mm_and_si128(raw, mask), hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
    out[0] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo));
    out[1] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)));
    out[2] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi));
    out[3] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)));
}
#else /* portable C: one float per "vector" */
typedef float vf;
#define VW 1
#define vzero() 0.0f
#define vload(p) (*(p))
#define vstore(p, v) (*(p) = (v))
#define vset1(x) (x)
#define vfma(a, b, c) ((a) * (b) + (c))
#define vsum(v) (v)
static inline void q4_ints(const uint8_t *q, vf *out) {
    for (int j = 0; j < 16; j++) out[j] = (float)(q[j] & 15), out[j + 16] = (float)(q[j] >> 4);
}
#endif

#define NV (32 / VW) /* vectors per block of 32 */
#define TILE 4       /* output rows computed together: independent accumulators hide the FMA latency */
#define ROWS 4       /* input rows per pass over a decoded tile: TILE x ROWS accumulators in registers */

enum { QKV, O, GATE_UP, DOWN, ATTN_NORM, MLP_NORM, K_CACHE, V_CACHE, PER_LAYER };
enum { EMBED_Q, EMBED_D, NORM, COS, SIN, GLOBALS };
enum { HIDDEN, INTER, HEADS, KV_HEADS, HEAD_DIM, LAYERS, VOCAB, CONFIG_SIZE };
/* Ask for the weight stream PREFETCH bytes ahead of `rec`: the two lines a block of TILE records spans. Measured 25-40%
 * less time for one row's step than with the hardware prefetcher alone (a stream of ~80 MB per token); a batch, bound
 * by arithmetic, measured no gain. */
#define PREFETCH 4096
static inline void ahead(const uint8_t *rec) {
    __builtin_prefetch(rec + PREFETCH);
    __builtin_prefetch(rec + PREFETCH + 64);
}

/* One Q4_1 block record: float32 d and m, then 16 bytes of nibbles, byte j holding value j in its low nibble and
 * value j+16 in its high one (GGUF's order); as float32 vectors w = q * d + m. GGUF stores d and m as float16: as
 * float32 they broadcast straight from memory, which measured faster than converting them (the step is bound by
 * instructions, not by memory reads). */
#define RECORD 24
static inline void block(const uint8_t *rec, vf *w) {
    float dm[2];
    vf ints[NV];
    memcpy(dm, rec, 8);
    const vf d = vset1(dm[0]), m = vset1(dm[1]);
    q4_ints(rec + 8, ints);
    for (int i = 0; i < NV; i++) w[i] = vfma(ints[i], d, m);
}

/* y[r, o] = W[o] . x[r] for input rows r < B; W [out, in] is Q4_1 in tiles: for each TILE output rows, for each block
 * of 32 inputs, the TILE rows' records one after another, so a step reads the weights as one sequential stream.
 * One input row: each block is decoded in registers and used at once. More: a tile's rows are decoded into `w`
 * (TILE * in floats) once and serve every input row, ROWS at a time. Both do the same arithmetic in the same order
 * (see the top). */
static void matmul_tiles(const uint8_t *q, int out, int in, const float *x, int B, float *y, float *w, int first,
                         int last) {
    const int blocks = in / 32;
    q += (size_t)first * TILE * blocks * RECORD;
    for (int o = first * TILE; o < last * TILE; o += TILE, q += (size_t)TILE * blocks * RECORD) {
        if (B == 1) {
            vf acc[TILE] = {vzero(), vzero(), vzero(), vzero()};
            const uint8_t *rec = q;
            for (int b = 0; b < blocks; b++) {
                vf xv[NV], wv[NV];
                ahead(rec);
                for (int i = 0; i < NV; i++) xv[i] = vload(x + b * 32 + i * VW);
                for (int t = 0; t < TILE; t++, rec += RECORD) {
                    block(rec, wv);
                    for (int i = 0; i < NV; i++) acc[t] = vfma(wv[i], xv[i], acc[t]);
                }
            }
            for (int t = 0; t < TILE; t++) y[o + t] = vsum(acc[t]);
            continue;
        }
        const uint8_t *rec = q;
        for (int b = 0; b < blocks; b++)
            for (int t = 0; t < TILE; t++, rec += RECORD) {
                vf wv[NV];
                block(rec, wv);
                for (int i = 0; i < NV; i++) vstore(w + (size_t)t * in + b * 32 + i * VW, wv[i]);
            }
        for (int r = 0; r < B; r += ROWS) {
            const float *xr[ROWS];
            for (int i = 0; i < ROWS; i++) xr[i] = x + (size_t)(r + i < B ? r + i : r) * in; /* past B: a repeat */
            vf acc[ROWS][TILE];
            for (int i = 0; i < ROWS; i++)
                for (int t = 0; t < TILE; t++) acc[i][t] = vzero();
            for (int c = 0; c < in; c += VW) {
                vf wt[TILE];
                for (int t = 0; t < TILE; t++) wt[t] = vload(w + (size_t)t * in + c);
                for (int i = 0; i < ROWS; i++) {
                    const vf v = vload(xr[i] + c);
                    for (int t = 0; t < TILE; t++) acc[i][t] = vfma(wt[t], v, acc[i][t]);
                }
            }
            for (int i = 0; i < ROWS && r + i < B; i++)
                for (int t = 0; t < TILE; t++) y[(size_t)(r + i) * out + o + t] = vsum(acc[i][t]);
        }
    }
}

/* A pool of worker threads for the matmuls and attention of a step: tasks split into `parts`, part 0 on the caller.
 * Waits spin briefly (a step's tasks follow each other within microseconds), then sleep: idle workers cost nothing. A
 * second step arriving while one runs (another model in the process) runs on its caller alone. */
#define MAX_THREADS 64
#define SPINS 4000
typedef void (*task_fn)(void *ctx, int part, int parts);
static struct {
    pthread_mutex_t busy, lock;
    pthread_cond_t wake;
    atomic_uint generation;
    atomic_int done, sleeping;
    int workers;
    task_fn fn;
    void *ctx;
    int parts;
    float *buffer[MAX_THREADS]; /* each thread's dequantized tile or attention scores */
    size_t buffer_floats;
} pool = {.busy = PTHREAD_MUTEX_INITIALIZER, .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static inline void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause(); /* _mm_pause without immintrin.h, which the portable build does not include */
#endif
}

static void *worker(void *arg) {
    const int index = (int)(intptr_t)arg;
    unsigned seen = 0, now;
    for (;;) {
        for (int spins = 0; (now = atomic_load(&pool.generation)) == seen; spins++)
            if (spins >= SPINS) {
                pthread_mutex_lock(&pool.lock);
                atomic_fetch_add(&pool.sleeping, 1);
                while ((now = atomic_load(&pool.generation)) == seen) pthread_cond_wait(&pool.wake, &pool.lock);
                atomic_fetch_sub(&pool.sleeping, 1);
                pthread_mutex_unlock(&pool.lock);
                break;
            } else relax();
        seen = now;
        if (index < pool.parts) pool.fn(pool.ctx, index, pool.parts);
        atomic_fetch_add(&pool.done, 1);
    }
    return NULL;
}

/* Run fn over `parts` parts (the pool is held by the caller: see `decode_step`). */
static void run(task_fn fn, void *ctx, int parts) {
    if (parts <= 1) {
        fn(ctx, 0, 1);
        return;
    }
    pool.fn = fn, pool.ctx = ctx, pool.parts = parts;
    atomic_store(&pool.done, 0);
    atomic_fetch_add(&pool.generation, 1);
    if (atomic_load(&pool.sleeping)) {
        pthread_mutex_lock(&pool.lock);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.lock);
    }
    fn(ctx, 0, parts);
    for (int spins = 0; atomic_load(&pool.done) < pool.workers; spins++)
        if (spins >= SPINS) sched_yield(); /* a worker was preempted: give it the core */
        else relax();
}

/* A forked child has none of the workers (only the forking thread survives a fork): it starts a pool afresh. */
static void forked(void) {
    pthread_mutex_init(&pool.busy, NULL);
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.wake, NULL);
    atomic_store(&pool.sleeping, 0);
    pool.workers = 0;
}

/* The threads of one step: the pool's (held until `release`), or the caller alone with a buffer of its own. */
typedef struct {
    int parts, pooled;
    float *buffer[MAX_THREADS]; /* each part's dequantized tile or attention scores */
} team;

static team acquire(int threads, size_t floats) {
    team t = {1, 0, {NULL}};
    if (threads > 1 && pthread_mutex_trylock(&pool.busy) == 0) {
        if (threads > MAX_THREADS) threads = MAX_THREADS;
        static int registered;
        if (!registered) registered = pthread_atfork(NULL, NULL, forked) == 0;
        while (pool.workers < threads - 1) {
            pthread_t thread;
            if (pthread_create(&thread, NULL, worker, (void *)(intptr_t)(pool.workers + 1)) != 0) break;
            pthread_detach(thread);
            pool.workers++;
        }
        if (floats > pool.buffer_floats) {
            for (int i = 0; i < MAX_THREADS; i++) free(pool.buffer[i]), pool.buffer[i] = NULL;
            pool.buffer_floats = floats;
        }
        t.pooled = 1;
        t.parts = threads < pool.workers + 1 ? threads : pool.workers + 1;
        for (int i = 0; i < t.parts; i++) {
            if (!pool.buffer[i]) pool.buffer[i] = malloc(pool.buffer_floats * sizeof(float));
            t.buffer[i] = pool.buffer[i];
        }
    } else {
        t.buffer[0] = malloc(floats * sizeof(float));
    }
    return t;
}

static void release(team *t) {
    if (t->pooled) pthread_mutex_unlock(&pool.busy);
    else free(t->buffer[0]);
}

typedef struct {
    const team *team;
    const uint8_t *q;
    int out, in, B;
    const float *x;
    float *y;
} matmul_task;

static void matmul_part(void *ctx, int part, int parts) {
    const matmul_task *t = ctx;
    const int tiles = t->out / TILE;
    matmul_tiles(t->q, t->out, t->in, t->x, t->B, t->y, t->team->buffer[part], tiles * part / parts,
                 tiles * (part + 1) / parts);
}

static void matmul(const team *team, const uint8_t *q, int out, int in, const float *x, int B, float *y) {
    matmul_task t = {team, q, out, in, B, x, y};
    run(matmul_part, &t, team->parts);
}

/* y[r, o] = W[o] . x[r] for input rows r < B on up to `threads` threads (the LM head). */
void matmul_q4(const uint8_t *q, int out, int in, const float *x, int B, float *y, int threads) {
    team t = acquire(threads, (size_t)TILE * in);
    matmul(&t, q, out, in, x, B, y);
    release(&t);
}

static float dot(const float *a, const float *b, int n) {
    vf acc = vzero();
    for (int i = 0; i < n; i += VW) acc = vfma(vload(a + i), vload(b + i), acc);
    return vsum(acc);
}

/* y += a * x */
static void axpy(float a, const float *x, float *y, int n) {
    vf va = vset1(a);
    for (int i = 0; i < n; i += VW) vstore(y + i, vfma(va, vload(x + i), vload(y + i)));
}

static void rms_norm(const float *x, const float *weight, int n, float eps, float *y) {
    float inv = 1.0f / sqrtf(dot(x, x, n) / n + eps);
    for (int i = 0; i < n; i++) y[i] = x[i] * inv * weight[i];
}

/* Rotate-half rotary embedding of one head in place; cos/sin hold head_dim values (each half repeated). */
static void rope(float *v, const float *cos, const float *sin, int hd) {
    int half = hd / 2;
    for (int i = 0; i < half; i++) {
        float a = v[i], b = v[i + half];
        v[i] = a * cos[i] - b * sin[i];
        v[i + half] = b * cos[i + half] + a * sin[i + half];
    }
}

/* Scratch floats the caller provides for `decode_step`. */
int64_t scratch_floats(const int32_t *cfg, int B) {
    int64_t h = cfg[HIDDEN], qkv = (int64_t)(cfg[HEADS] + 2 * cfg[KV_HEADS]) * cfg[HEAD_DIM];
    return B * (3 * h + qkv + cfg[HEADS] * cfg[HEAD_DIM] + 3 * (int64_t)cfg[INTER]);
}

/* Attention of one query head over its row's cache prefix [0, len): softmax(q . k * scale) . v into `o`. */
static void attend(const float *qh, const float *kc, const float *vc, int len, int hd, float scale, float *scores,
                   float *o) {
    float best = -INFINITY, total = 0.0f;
    for (int t = 0; t < len; t++) {
        scores[t] = dot(qh, kc + (size_t)t * hd, hd) * scale;
        if (scores[t] > best) best = scores[t];
    }
    for (int t = 0; t < len; t++) total += scores[t] = expf(scores[t] - best);
    memset(o, 0, hd * sizeof(float));
    for (int t = 0; t < len; t++) axpy(scores[t] / total, vc + (size_t)t * hd, o, hd);
}

typedef struct {
    const team *team;
    const int32_t *cfg;
    int capacity;
    const int64_t *pos;
    const float *cos, *sin;
    float *qkv, *att, *k_cache, *v_cache;
} attention_task;

/* Rotary embedding, the cache write and attention for a share of the (row, KV head) pairs. */
static void attention_part(void *ctx, int part, int parts) {
    const attention_task *t = ctx;
    const int heads = t->cfg[HEADS], kvh = t->cfg[KV_HEADS], hd = t->cfg[HEAD_DIM], group = heads / kvh;
    const int qw = heads * hd, kvw = kvh * hd, qkvw = qw + 2 * kvw, B = t->cfg[CONFIG_SIZE];
    const float scale = 1.0f / sqrtf((float)hd);
    const int pairs = B * kvh;
    for (int pair = pairs * part / parts; pair < pairs * (part + 1) / parts; pair++) {
        const int r = pair / kvh, kv = pair % kvh;
        float *row = t->qkv + (size_t)r * qkvw;
        const float *c = t->cos + (size_t)t->pos[r] * hd, *s = t->sin + (size_t)t->pos[r] * hd;
        const size_t base = ((size_t)r * kvh + kv) * t->capacity * hd;
        rope(row + qw + kv * hd, c, s, hd);
        memcpy(t->k_cache + base + (size_t)t->pos[r] * hd, row + qw + kv * hd, hd * sizeof(float));
        memcpy(t->v_cache + base + (size_t)t->pos[r] * hd, row + qw + kvw + kv * hd, hd * sizeof(float));
        for (int head = kv * group; head < (kv + 1) * group; head++) { /* query heads sharing this KV head */
            rope(row + head * hd, c, s, hd);
            attend(row + head * hd, t->k_cache + base, t->v_cache + base, (int)t->pos[r] + 1, hd, scale,
                   t->team->buffer[part], t->att + (size_t)r * qw + head * hd);
        }
    }
}

/* One token for each of cache rows 0..B-1 on up to `threads` threads: token[r] at position pos[r], whose K/V are
 * written into the cache; writes the final normed hidden states [B, hidden] to `out` (the LM head: `matmul_q4`). */
void decode_step(const int64_t *const *layer_ptrs, const int64_t *globals, const int32_t *config, float eps,
                 int capacity, int B, const int64_t *token, const int64_t *pos, float *scratch, float *out,
                 int threads) {
    int32_t cfg[CONFIG_SIZE + 1];
    memcpy(cfg, config, sizeof(int32_t) * CONFIG_SIZE);
    cfg[CONFIG_SIZE] = B;
    const int h = cfg[HIDDEN], inter = cfg[INTER], heads = cfg[HEADS], kvh = cfg[KV_HEADS], hd = cfg[HEAD_DIM];
    const int qw = heads * hd, qkvw = qw + 2 * kvh * hd;
    float *x = scratch, *xn = x + (size_t)B * h, *tmp = xn + (size_t)B * h, *qkv = tmp + (size_t)B * h;
    float *att = qkv + (size_t)B * qkvw, *gu = att + (size_t)B * qw, *act = gu + (size_t)B * 2 * inter;
    const int8_t *embed_q = (const int8_t *)globals[EMBED_Q];
    const float *embed_d = (const float *)globals[EMBED_D];
    size_t floats = (size_t)TILE * (inter > h ? inter : h);
    team team = acquire(threads, floats > (size_t)capacity ? floats : (size_t)capacity);

    for (int r = 0; r < B; r++)
        for (int i = 0; i < h; i++)
            x[(size_t)r * h + i] = embed_q[(size_t)token[r] * h + i] * embed_d[((size_t)token[r] * h + i) / 32];

    for (int l = 0; l < cfg[LAYERS]; l++) {
        const int64_t *p = layer_ptrs[l];
        for (int r = 0; r < B; r++) rms_norm(x + (size_t)r * h, (const float *)p[ATTN_NORM], h, eps, xn + (size_t)r * h);
        matmul(&team, (const uint8_t *)p[QKV], qkvw, h, xn, B, qkv);
        attention_task at = {&team, cfg, capacity, pos, (const float *)globals[COS], (const float *)globals[SIN],
                             qkv, att, (float *)p[K_CACHE], (float *)p[V_CACHE]};
        run(attention_part, &at, team.parts);
        matmul(&team, (const uint8_t *)p[O], h, qw, att, B, tmp);
        for (size_t i = 0; i < (size_t)B * h; i++) x[i] += tmp[i];
        for (int r = 0; r < B; r++) rms_norm(x + (size_t)r * h, (const float *)p[MLP_NORM], h, eps, xn + (size_t)r * h);
        matmul(&team, (const uint8_t *)p[GATE_UP], 2 * inter, h, xn, B, gu);
        for (int r = 0; r < B; r++)
            for (int i = 0; i < inter; i++) {
                float g = gu[(size_t)r * 2 * inter + i], u = gu[(size_t)r * 2 * inter + inter + i];
                act[(size_t)r * inter + i] = g / (1.0f + expf(-g)) * u;
            }
        matmul(&team, (const uint8_t *)p[DOWN], h, inter, act, B, tmp);
        for (size_t i = 0; i < (size_t)B * h; i++) x[i] += tmp[i];
    }
    release(&team);
    for (int r = 0; r < B; r++) rms_norm(x + (size_t)r * h, (const float *)globals[NORM], h, eps, out + (size_t)r * h);
}
