/*
 * refimpl_c: the C twin of memcycle's reference engine (refimpl).
 *
 * Same lifecycle as refimpl's Database: uninitialized -> ready(dimension) -> (clear) ->
 * uninitialized again, so the next init may change the dimension; destroy frees everything.
 * Tiers, as in refimpl: a flat buffer of the newest rows, migrated in bulk into a main tier,
 * and segments built directly from large batches (searched through cached views). Every tier
 * is searched exactly (brute force). An open-addressing id map holds id -> (tier, row).
 *
 * Faults: the reference note's bugs where they translate to C, off unless switched on with
 * rc_set_fault(name, 1). Each wrong line sits next to the right one, under fault_on(F_...).
 * Buffers go through rc_malloc/rc_free only to keep a live-block count (no headers, no
 * guard zones: the memory layout is plain malloc's, so a bug here is a bug glibc, ASan and
 * valgrind see as they would in any C engine).
 *
 * Distances (smaller is closer): l2 squared, -dot (ip), 1 - cosine.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RC_OK 0
#define RC_EINVAL (-1)   /* bad argument */
#define RC_EDIM (-2)     /* dimension mismatch */
#define RC_EDUP (-3)     /* id already present (or twice in one batch) */
#define RC_ENOMEM (-4)   /* malloc failed */
#define RC_ESTATE (-5)   /* not initialized */

#define METRIC_L2 0
#define METRIC_IP 1
#define METRIC_COSINE 2

#define TIER_FLAT 0
#define TIER_MAIN 1
#define TIER_SEG0 2 /* TIER_SEG0 + i: segment i */
#define LOC_SHIFT 40
#define LOC_ROW ((((int64_t)1) << LOC_SHIFT) - 1)

/* -- faults ------------------------------------------------------------------------------ */
enum {
    F_FLAT_BUFFER_DOUBLE_FREE,
    F_STALE_SEGMENT_VIEW,
    F_UNINITIALIZED_SLOT_ASSIGN,
    F_SPARSE_MAP_RECREATE,
    F_SINGLETON_DOUBLE_DESTROY,
    F_FLAT_BUFFER_LEAK,
    F_MIGRATION_OVERFLOW,
    F_COUNT
};
static const char *const FAULT_NAMES[F_COUNT] = {
    "flat-buffer-double-free", "stale-segment-view",       "uninitialized-slot-assign",
    "sparse-map-recreate",     "singleton-double-destroy", "flat-buffer-leak",
    "migration-overflow",
};
static int g_faults[F_COUNT];
static char g_fault_list[512];
static char g_err[512];

/* what the reference note's crash freed: "Attempt to free invalid pointer 0xa" */
#define FRESH_SLOT_GARBAGE ((void *)(uintptr_t)0xa)

static int fault_on(int f) { return g_faults[f]; }

/* Record the error text (rc_last_error) and return its code. */
static int fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return code;
}

const char *rc_last_error(void) { return g_err; }

const char *rc_fault_names(void) {
    if (!g_fault_list[0]) {
        for (int i = 0; i < F_COUNT; i++) {
            if (i) strcat(g_fault_list, ",");
            strcat(g_fault_list, FAULT_NAMES[i]);
        }
    }
    return g_fault_list;
}

int rc_set_fault(const char *name, int on) {
    for (int i = 0; i < F_COUNT; i++) {
        if (name && strcmp(name, FAULT_NAMES[i]) == 0) {
            g_faults[i] = on ? 1 : 0;
            return RC_OK;
        }
    }
    return fail(RC_EINVAL, "unknown fault '%s'", name ? name : "(null)");
}

/* -- counted allocation -------------------------------------------------------------------- */
static int64_t g_live_blocks, g_live_bytes;

static void *rc_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (p) {
        g_live_blocks++;
        g_live_bytes += (int64_t)n;
    }
    return p;
}

static void rc_free(void *p, size_t n) {
    if (!p) return;
    free(p);
    g_live_blocks--;
    g_live_bytes -= (int64_t)n;
}

void rc_stats(int64_t *blocks, int64_t *bytes) {
    if (blocks) *blocks = g_live_blocks;
    if (bytes) *bytes = g_live_bytes;
}

/* -- the id map: open addressing, linear probing, tombstones --------------------------------- */
typedef struct {
    int64_t *keys;
    int64_t *vals;
    uint8_t *states; /* 0 empty, 1 used, 2 deleted */
    int64_t cap, used, filled;
} idmap_t;

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static int idmap_init(idmap_t *m, int64_t cap) {
    m->keys = rc_malloc((size_t)cap * sizeof(int64_t));
    m->vals = rc_malloc((size_t)cap * sizeof(int64_t));
    m->states = rc_malloc((size_t)cap);
    if (!m->keys || !m->vals || !m->states) return RC_ENOMEM;
    memset(m->states, 0, (size_t)cap);
    m->cap = cap;
    m->used = m->filled = 0;
    return RC_OK;
}

static void idmap_free_blocks(idmap_t *m) {
    rc_free(m->keys, (size_t)m->cap * sizeof(int64_t));
    rc_free(m->vals, (size_t)m->cap * sizeof(int64_t));
    rc_free(m->states, (size_t)m->cap);
}

static void idmap_destroy(idmap_t *m) {
    idmap_free_blocks(m);
    memset(m, 0, sizeof *m);
}

static int64_t idmap_find(const idmap_t *m, int64_t key) {
    if (!m->cap) return -1;
    uint64_t mask = (uint64_t)m->cap - 1;
    for (uint64_t i = mix64((uint64_t)key) & mask;; i = (i + 1) & mask) {
        if (m->states[i] == 0) return -1;
        if (m->states[i] == 1 && m->keys[i] == key) return (int64_t)i;
    }
}

static int idmap_put(idmap_t *m, int64_t key, int64_t val);

static int idmap_rehash(idmap_t *m, int64_t cap) {
    idmap_t old = *m;
    int rc = idmap_init(m, cap);
    if (rc) return rc;
    for (int64_t i = 0; i < old.cap; i++)
        if (old.states[i] == 1) idmap_put(m, old.keys[i], old.vals[i]);
    idmap_free_blocks(&old);
    return RC_OK;
}

static int idmap_put(idmap_t *m, int64_t key, int64_t val) {
    if ((m->filled + 1) * 10 > m->cap * 7) {
        int64_t cap = m->cap;
        while ((m->used + 1) * 10 > cap * 5) cap *= 2;
        int rc = idmap_rehash(m, cap);
        if (rc) return rc;
    }
    uint64_t mask = (uint64_t)m->cap - 1;
    for (uint64_t i = mix64((uint64_t)key) & mask;; i = (i + 1) & mask) {
        if (m->states[i] != 1) {
            if (m->states[i] == 0) m->filled++;
            m->states[i] = 1;
            m->keys[i] = key;
            m->vals[i] = val;
            m->used++;
            return RC_OK;
        }
        if (m->keys[i] == key) {
            m->vals[i] = val;
            return RC_OK;
        }
    }
}

static void idmap_remove_at(idmap_t *m, int64_t i) {
    m->states[i] = 2;
    m->used--;
}

#define IDMAP_INITIAL 64

/* The id map's clear: empty it and give its blocks back, so a cleared database holds none. */
static int idmap_clear(idmap_t *m) {
    if (fault_on(F_SPARSE_MAP_RECREATE)) {
        /* FAULT sparse-map-recreate: "self.id_to_index = SparseMap(64) // BAD: Creates new
         * instance, old one gets double-freed": the map's blocks are freed, a new map is
         * built, and the old instance's destructor frees the same blocks again. */
        idmap_t fresh, old = *m;
        int rc = idmap_init(&fresh, IDMAP_INITIAL); /* the new instance */
        idmap_free_blocks(m);                       /* clear() frees the map's memory */
        *m = fresh;                                 /* the assignment destroys the old one: */
        idmap_destroy(&old);                        /* its blocks are freed a second time */
        return rc;
    }
    /* FIXED: clear in place; the blocks go back (clear frees everything the engine holds) */
    idmap_destroy(m);
    return RC_OK;
}

/* -- tiers ------------------------------------------------------------------------------ */
typedef struct {
    float *vecs;
    int64_t *ids;
    uint8_t *dead;
    int64_t n, cap;
} tier_t;

typedef struct {
    const float *vecs;
    const int64_t *ids;
    const uint8_t *dead;
    int64_t n;
} view_t;

static int tier_alloc(tier_t *t, int64_t cap, int64_t dim) {
    t->dead = rc_malloc((size_t)cap);
    t->ids = rc_malloc((size_t)cap * sizeof(int64_t));
    t->vecs = rc_malloc((size_t)(cap * dim) * sizeof(float));
    t->n = 0;
    t->cap = cap;
    if (!t->vecs || !t->ids || !t->dead) return RC_ENOMEM;
    return RC_OK;
}

static void tier_free(tier_t *t, int64_t dim) {
    if (t->cap) {
        rc_free(t->dead, (size_t)t->cap);
        rc_free(t->ids, (size_t)t->cap * sizeof(int64_t));
        rc_free(t->vecs, (size_t)(t->cap * dim) * sizeof(float));
    }
    memset(t, 0, sizeof *t);
}

/* -- the database ------------------------------------------------------------------------ */
typedef struct rc_db {
    int ready;
    int metric;
    int64_t dim;
    int64_t buffer_size, segment_threshold, segment_size;
    int64_t n_live;
    tier_t flat;
    int flat_held; /* flat.* blocks allocated and not freed by this object */
    tier_t main;
    tier_t *segs;
    int64_t n_segs, segs_cap;
    view_t *views; /* per segment, for the fan-out search */
    int64_t n_views, views_cap;
    idmap_t map;
} rc_db;

rc_db *rc_create(int64_t buffer_size, int64_t segment_threshold, int64_t segment_size) {
    if (buffer_size <= 0 || segment_threshold <= 0 || segment_size <= 0) {
        fail(RC_EINVAL, "buffer_size, segment_threshold and segment_size must be positive");
        return NULL;
    }
    rc_db *db = calloc(1, sizeof *db);
    if (!db) return NULL;
    db->buffer_size = buffer_size;
    db->segment_threshold = segment_threshold;
    db->segment_size = segment_size;
    return db;
}

int rc_is_ready(const rc_db *db) { return db && db->ready; }
int64_t rc_dimension(const rc_db *db) { return db && db->ready ? db->dim : 0; }
int64_t rc_count(const rc_db *db) { return db && db->ready ? db->n_live : 0; }

/* Ready the database for `dim`: the flat buffer and the id map are allocated here. */
int rc_init(rc_db *db, int64_t dim, int metric) {
    if (!db) return fail(RC_EINVAL, "no database");
    if (dim <= 0) return fail(RC_EINVAL, "dimension must be positive, got %lld", (long long)(dim));
    if (metric < METRIC_L2 || metric > METRIC_COSINE)
        return fail(RC_EINVAL, "unknown metric code %lld", (long long)(metric));
    if (db->ready) {
        if (db->dim != dim)
            return fail(RC_EDIM, "database is ready with dimension %lld; clear() before %lld", (long long)(db->dim), (long long)(dim));
        return RC_OK;
    }
    /* the note's "In initialize(): Check and free before allocating" */
    if (db->flat_held) {
        /* right only when clear() forgot the buffer; with flat-buffer-double-free, clear()
         * freed it and kept the handle, so this is its second free */
        rc_free(db->flat.ids, (size_t)db->flat.cap * sizeof(int64_t));
        rc_free(db->flat.dead, (size_t)db->flat.cap);
        rc_free(db->flat.vecs, (size_t)(db->flat.cap * db->dim) * sizeof(float));
        db->flat_held = 0;
    }
    memset(&db->flat, 0, sizeof db->flat);
    db->dim = dim;
    db->metric = metric;
    int rc = tier_alloc(&db->flat, db->buffer_size, dim);
    if (rc) return fail(rc, "out of memory for the flat buffer");
    db->flat_held = 1;
    rc = idmap_init(&db->map, IDMAP_INITIAL);
    if (rc) return fail(rc, "out of memory for the id map");
    db->n_live = 0;
    db->ready = 1;
    return RC_OK;
}

static int tier_reserve(tier_t *t, int64_t need, int64_t dim) {
    if (need <= t->cap) return RC_OK;
    int64_t cap = t->cap ? t->cap : 256;
    while (cap < need) cap *= 2;
    tier_t grown;
    int rc = tier_alloc(&grown, cap, dim);
    if (rc) return rc;
    if (t->n) {
        memcpy(grown.vecs, t->vecs, (size_t)(t->n * dim) * sizeof(float));
        memcpy(grown.ids, t->ids, (size_t)t->n * sizeof(int64_t));
        memcpy(grown.dead, t->dead, (size_t)t->n);
    }
    grown.n = t->n;
    tier_free(t, dim);
    *t = grown;
    return RC_OK;
}

static int64_t loc(int64_t tier, int64_t row) { return (tier << LOC_SHIFT) | row; }

static int place(rc_db *db, int64_t id, int64_t tier, int64_t row) {
    return idmap_put(&db->map, id, loc(tier, row));
}

/* append rows (all live) to a tier that has room, recording where each id now lives */
static int tier_append(rc_db *db, tier_t *t, int64_t tier, const int64_t *ids, const float *x,
                       int64_t n) {
    memcpy(t->vecs + t->n * db->dim, x, (size_t)(n * db->dim) * sizeof(float));
    memcpy(t->ids + t->n, ids, (size_t)n * sizeof(int64_t));
    memset(t->dead + t->n, 0, (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        int rc = place(db, ids[i], tier, t->n + i);
        if (rc) return rc;
    }
    t->n += n;
    return RC_OK;
}

static int to_main(rc_db *db, const int64_t *ids, const float *x, int64_t n) {
    int rc = tier_reserve(&db->main, db->main.n + n, db->dim);
    if (rc) return rc;
    return tier_append(db, &db->main, TIER_MAIN, ids, x, n);
}

/* the flat buffer's live rows go to the main tier; the buffer is empty again */
static int migrate_flat(rc_db *db) {
    tier_t *f = &db->flat;
    for (int64_t i = 0; i < f->n; i++) {
        if (f->dead[i]) continue;
        int rc = to_main(db, f->ids + i, f->vecs + i * db->dim, 1);
        if (rc) return rc;
    }
    f->n = 0;
    return RC_OK;
}

static int to_flat(rc_db *db, const int64_t *ids, const float *x, int64_t n) {
    tier_t *f = &db->flat;
    int64_t room = f->cap - f->n;
    if (fault_on(F_MIGRATION_OVERFLOW) && n > room) {
        /* FAULT migration-overflow: "Size/capacity desync": the whole batch of vectors is
         * copied into the buffer before migrating, past the end of its block (the ids are
         * copied for the room there is). */
        memcpy(f->vecs + f->n * db->dim, x, (size_t)(n * db->dim) * sizeof(float));
        memcpy(f->ids + f->n, ids, (size_t)room * sizeof(int64_t));
        memset(f->dead + f->n, 0, (size_t)room);
        int64_t old = f->n;
        f->n = f->cap;
        int rc = migrate_flat(db);
        if (rc) return rc;
        return to_main(db, ids + (f->cap - old), x + (f->cap - old) * db->dim, n - room);
    }
    int64_t i = 0;
    while (i < n) {
        int64_t take = f->cap - f->n;
        if (take > n - i) take = n - i;
        int rc = tier_append(db, f, TIER_FLAT, ids + i, x + i * db->dim, take);
        if (rc) return rc;
        i += take;
        if (f->n == f->cap) {
            rc = migrate_flat(db);
            if (rc) return rc;
        }
    }
    return RC_OK;
}

/* Put segment `seg` into slot `slot` of the segment table (grown by the caller). */
static void seg_store(rc_db *db, int64_t slot, tier_t seg) {
    tier_t *old = &db->segs[slot];
    if (fault_on(F_UNINITIALIZED_SLOT_ASSIGN)) {
        /* FAULT uninitialized-slot-assign: assignment "destroys" the previous occupant, but a
         * freshly grown slot holds garbage, and the garbage pointer goes to free() ("Attempt
         * to free invalid pointer 0xa"). */
        free(old->vecs);
    }
    *old = seg;
}

static int segs_grow(rc_db *db, int64_t need) {
    if (need <= db->segs_cap) return RC_OK;
    int64_t cap = db->segs_cap ? db->segs_cap * 2 : 4;
    while (cap < need) cap *= 2;
    tier_t *grown = rc_malloc((size_t)cap * sizeof(tier_t));
    view_t *views = rc_malloc((size_t)cap * sizeof(view_t));
    if (!grown || !views) return RC_ENOMEM;
    if (db->n_segs) memcpy(grown, db->segs, (size_t)db->n_segs * sizeof(tier_t));
    if (db->n_views) memcpy(views, db->views, (size_t)db->n_views * sizeof(view_t));
    for (int64_t i = db->n_segs; i < cap; i++) {
        /* malloc leaves the fresh slots uninitialised; the twin makes that garbage the
         * note's 0xa so the faulty assignment frees the same pointer every run */
        if (fault_on(F_UNINITIALIZED_SLOT_ASSIGN))
            grown[i].vecs = FRESH_SLOT_GARBAGE;
        else
            memset(&grown[i], 0, sizeof grown[i]);
    }
    rc_free(db->segs, (size_t)db->segs_cap * sizeof(tier_t));
    rc_free(db->views, (size_t)db->views_cap * sizeof(view_t));
    db->segs = grown;
    db->views = views;
    db->segs_cap = db->views_cap = cap;
    return RC_OK;
}

/* A large batch becomes new segments of about segment_size rows each. */
static int to_segments(rc_db *db, const int64_t *ids, const float *x, int64_t n) {
    int64_t parts = n / db->segment_size;
    if (parts < 1) parts = 1;
    /* views and segments share one capacity; stale views (a fault) outnumber segments */
    int rc = segs_grow(db, (db->n_views > db->n_segs ? db->n_views : db->n_segs) + parts);
    if (rc) return rc;
    for (int64_t j = 0; j < parts; j++) {
        int64_t lo = n * j / parts, hi = n * (j + 1) / parts;
        tier_t seg;
        rc = tier_alloc(&seg, hi - lo, db->dim);
        if (rc) return rc;
        int64_t slot = db->n_segs;
        seg_store(db, slot, seg);
        db->n_segs++;
        rc = tier_append(db, &db->segs[slot], TIER_SEG0 + slot, ids + lo, x + lo * db->dim,
                         hi - lo);
        if (rc) return rc;
        tier_t *s = &db->segs[slot];
        db->views[db->n_views++] = (view_t){s->vecs, s->ids, s->dead, s->n};
    }
    return RC_OK;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int rc_add_batch(rc_db *db, const int64_t *ids, const float *vectors, int64_t n) {
    if (!db || !db->ready) return fail(RC_ESTATE, "database not initialized");
    if (n < 0 || (n && (!ids || !vectors)))
        return fail(RC_EINVAL, "bad batch (n=%lld)", (long long)(n));
    if (n == 0) return RC_OK;
    for (int64_t i = 0; i < n; i++)
        if (idmap_find(&db->map, ids[i]) >= 0)
            return fail(RC_EDUP, "id %lld already present", (long long)(ids[i]));
    int64_t *sorted = malloc((size_t)n * sizeof(int64_t));
    if (!sorted) return fail(RC_ENOMEM, "out of memory");
    memcpy(sorted, ids, (size_t)n * sizeof(int64_t));
    qsort(sorted, (size_t)n, sizeof(int64_t), cmp_i64);
    for (int64_t i = 1; i < n; i++) {
        if (sorted[i] == sorted[i - 1]) {
            long long dup = sorted[i];
            free(sorted);
            return fail(RC_EDUP, "id %lld twice in one batch", (long long)(dup));
        }
    }
    free(sorted);
    int rc;
    if (n >= db->segment_threshold)
        rc = to_segments(db, ids, vectors, n);
    else if (n >= db->buffer_size)
        rc = to_main(db, ids, vectors, n);
    else
        rc = to_flat(db, ids, vectors, n);
    if (rc) return fail(rc, "add_batch failed (code %lld)", (long long)(rc));
    db->n_live += n;
    return RC_OK;
}

/* -- search --------------------------------------------------------------------------------- */
static float distance(const rc_db *db, const float *q, float qnorm, const float *x) {
    int64_t d = db->dim;
    if (db->metric == METRIC_L2) {
        float s = 0.f;
        for (int64_t i = 0; i < d; i++) {
            float t = q[i] - x[i];
            s += t * t;
        }
        return s;
    }
    float dot = 0.f, xx = 0.f;
    for (int64_t i = 0; i < d; i++) {
        dot += q[i] * x[i];
        xx += x[i] * x[i];
    }
    if (db->metric == METRIC_IP) return -dot;
    float denom = qnorm * sqrtf(xx);
    return denom > 0.f ? 1.f - dot / denom : 1.f;
}

static void push(int64_t k, int64_t *ids, float *dists, int64_t id, float dist) {
    if (!(dist < dists[k - 1]) && !(dist == dists[k - 1] && id < ids[k - 1] && ids[k - 1] >= 0))
        return;
    int64_t i = k - 1;
    while (i > 0 && (dists[i - 1] > dist || (dists[i - 1] == dist && ids[i - 1] > id))) {
        dists[i] = dists[i - 1];
        ids[i] = ids[i - 1];
        i--;
    }
    dists[i] = dist;
    ids[i] = id;
}

static void scan(const rc_db *db, const float *vecs, const int64_t *rids, const uint8_t *dead,
                 int64_t n, const float *q, float qnorm, int64_t k, int64_t *ids, float *dists) {
    for (int64_t r = 0; r < n; r++) {
        if (dead[r]) continue;
        push(k, ids, dists, rids[r], distance(db, q, qnorm, vecs + r * db->dim));
    }
}

int rc_search(const rc_db *db, const float *queries, int64_t nq, int64_t k, int64_t *out_ids,
              float *out_dists) {
    if (!db) return fail(RC_EINVAL, "no database");
    if (nq < 0 || k <= 0 || (nq && (!queries || !out_ids || !out_dists)))
        return fail(RC_EINVAL, "bad search arguments (nq=%lld, k=%lld)", (long long)(nq), (long long)(k));
    for (int64_t i = 0; i < nq * k; i++) {
        out_ids[i] = -1;
        out_dists[i] = INFINITY;
    }
    if (!db->ready) return RC_OK;
    for (int64_t qi = 0; qi < nq; qi++) {
        const float *q = queries + qi * db->dim;
        float qq = 0.f;
        for (int64_t i = 0; i < db->dim; i++) qq += q[i] * q[i];
        float qnorm = sqrtf(qq);
        int64_t *ids = out_ids + qi * k;
        float *dists = out_dists + qi * k;
        scan(db, db->flat.vecs, db->flat.ids, db->flat.dead, db->flat.n, q, qnorm, k, ids, dists);
        scan(db, db->main.vecs, db->main.ids, db->main.dead, db->main.n, q, qnorm, k, ids, dists);
        for (int64_t s = 0; s < db->n_views; s++) {
            const view_t *v = &db->views[s];
            scan(db, v->vecs, v->ids, v->dead, v->n, q, qnorm, k, ids, dists);
        }
    }
    return RC_OK;
}

/* -- rows by id -------------------------------------------------------------------------- */
static tier_t *tier_of(rc_db *db, int64_t where) {
    int64_t tier = where >> LOC_SHIFT;
    if (tier == TIER_FLAT) return &db->flat;
    if (tier == TIER_MAIN) return &db->main;
    return &db->segs[tier - TIER_SEG0];
}

/* Copy the stored row of `id` into out (dim floats); RC_EINVAL if absent. */
int rc_get(rc_db *db, int64_t id, float *out) {
    if (!db || !db->ready) return fail(RC_ESTATE, "database not initialized");
    int64_t i = idmap_find(&db->map, id);
    if (i < 0) return fail(RC_EINVAL, "id %lld not found", (long long)(id));
    int64_t where = db->map.vals[i];
    tier_t *t = tier_of(db, where);
    memcpy(out, t->vecs + (where & LOC_ROW) * db->dim, (size_t)db->dim * sizeof(float));
    return RC_OK;
}

/* Remove rows by id (absent ids are skipped); returns how many were removed, or < 0. */
int64_t rc_delete(rc_db *db, const int64_t *ids, int64_t n) {
    if (!db || !db->ready) return 0;
    int64_t removed = 0;
    for (int64_t j = 0; j < n; j++) {
        int64_t i = idmap_find(&db->map, ids[j]);
        if (i < 0) continue;
        int64_t where = db->map.vals[i];
        tier_of(db, where)->dead[where & LOC_ROW] = 1;
        idmap_remove_at(&db->map, i);
        removed++;
    }
    db->n_live -= removed;
    return removed;
}

/* -- clear / destroy ------------------------------------------------------------------------- */
static void free_segments(rc_db *db) {
    for (int64_t i = 0; i < db->n_segs; i++) tier_free(&db->segs[i], db->dim);
    db->n_segs = 0;
}

/* Drop every row and free every buffer: the database is uninitialized again and the next
 * init may use another dimension. */
void rc_clear(rc_db *db) {
    if (!db || !db->ready) return;
    idmap_clear(&db->map);
    if (fault_on(F_FLAT_BUFFER_LEAK)) {
        /* FAULT flat-buffer-leak: "Not freed in clear(); Re-allocated on next initialize()":
         * the handle is dropped, the blocks stay allocated. */
        memset(&db->flat, 0, sizeof db->flat);
        db->flat_held = 0;
    } else if (fault_on(F_FLAT_BUFFER_DOUBLE_FREE)) {
        /* FAULT flat-buffer-double-free: "In clear(): Properly free", but the handle is kept,
         * and init() "frees before allocating" a second time. */
        rc_free(db->flat.ids, (size_t)db->flat.cap * sizeof(int64_t));
        rc_free(db->flat.dead, (size_t)db->flat.cap);
        rc_free(db->flat.vecs, (size_t)(db->flat.cap * db->dim) * sizeof(float));
    } else {
        tier_free(&db->flat, db->dim);
        db->flat_held = 0;
    }
    tier_free(&db->main, db->dim);
    free_segments(db);
    if (!fault_on(F_STALE_SEGMENT_VIEW)) db->n_views = 0;
    /* FAULT stale-segment-view: the cached views of the freed segments stay, and the next
     * search walks freed memory. */
    if (!db->n_views) {
        rc_free(db->segs, (size_t)db->segs_cap * sizeof(tier_t));
        rc_free(db->views, (size_t)db->views_cap * sizeof(view_t));
        db->segs = NULL;
        db->views = NULL;
        db->segs_cap = db->views_cap = 0;
    }
    db->n_live = 0;
    db->ready = 0;
}

/* Free everything the database holds, and the database itself. */
void rc_destroy(rc_db *db) {
    if (!db) return;
    rc_clear(db); /* (a handle kept by flat-buffer-double-free is not freed again here) */
    rc_free(db->segs, (size_t)db->segs_cap * sizeof(tier_t));
    rc_free(db->views, (size_t)db->views_cap * sizeof(view_t));
    free(db);
}

/* -- the process-wide singleton ------------------------------------------------------------ */
static rc_db *g_db;

/* The process database, created with these sizes if there is none (ignored otherwise). */
rc_db *rc_get_global_db(int64_t buffer_size, int64_t segment_threshold, int64_t segment_size) {
    if (!g_db) g_db = rc_create(buffer_size, segment_threshold, segment_size);
    return g_db;
}

/* The destructor as a C engine writes it: free what is held, without resetting anything. */
static void destroy_in_place(rc_db *db) {
    rc_free(db->flat.ids, (size_t)db->flat.cap * sizeof(int64_t));
    rc_free(db->flat.dead, (size_t)db->flat.cap);
    rc_free(db->flat.vecs, (size_t)(db->flat.cap * db->dim) * sizeof(float));
    idmap_free_blocks(&db->map);
    for (int64_t i = 0; i < db->n_segs; i++) {
        rc_free(db->segs[i].dead, (size_t)db->segs[i].cap);
        rc_free(db->segs[i].ids, (size_t)db->segs[i].cap * sizeof(int64_t));
        rc_free(db->segs[i].vecs, (size_t)(db->segs[i].cap * db->dim) * sizeof(float));
    }
    if (db->main.cap) {
        rc_free(db->main.dead, (size_t)db->main.cap);
        rc_free(db->main.ids, (size_t)db->main.cap * sizeof(int64_t));
        rc_free(db->main.vecs, (size_t)(db->main.cap * db->dim) * sizeof(float));
    }
}

/* Destroy the process database and forget it (idempotent). */
void rc_cleanup_global_db(void) {
    rc_db *db = g_db;
    if (!db) return;
    if (fault_on(F_SINGLETON_DOUBLE_DESTROY)) {
        /* FAULT singleton-double-destroy: "Destructor called multiple times": the destructor
         * frees every block but the singleton is not forgotten, so the next cleanup runs it
         * again on the same blocks. */
        destroy_in_place(db);
        return;
    }
    g_db = NULL;
    rc_destroy(db);
}

/* The note's fix: destroy completely; rc_get_global_db() builds a fresh instance. */
void rc_clear_database(void) { rc_cleanup_global_db(); }

/* The global insert: the first batch initializes the database with its dimension. */
int rc_add_vector_batch(const int64_t *ids, const float *vectors, int64_t n, int64_t dim,
                        int metric) {
    rc_db *db = g_db;
    if (!db) return fail(RC_ESTATE, "no global database (call rc_get_global_db)");
    if (!db->ready) {
        int rc = rc_init(db, dim, metric);
        if (rc) return rc;
    } else if (db->dim != dim) {
        return fail(RC_EDIM, "vectors have dimension %lld, expected %lld", (long long)(dim), (long long)(db->dim));
    }
    return rc_add_batch(db, ids, vectors, n);
}
