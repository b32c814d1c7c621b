/* libstreamhub/services/offsets.c: the bus's durable numbering, kept in
 * the store (bus_int.h: sh__bus_set_reserver; table bus_offsets).
 *
 * The bus knows no store, so the hub hands it this reservation hook: one
 * statement that raises a key's reserved_upto by n (inserting it at n) and
 * returns the new value, atomic on its own, committed before the bus hands
 * out any offset of the block.  A chat channel reserves blocks of its own
 * sequence (at most `chat.offset-block` offsets, so a crash skips at most
 * that many); every other channel starts above the floor row '*'.
 */
#include "chat_int.h"
#include "hub_int.h"

static const struct sh__sql q_reserve = {
    "INSERT INTO bus_offsets (channel, reserved_upto) VALUES (?, ?) "
    "ON CONFLICT (channel) DO UPDATE SET reserved_upto = "
    "bus_offsets.reserved_upto + excluded.reserved_upto "
    "RETURNING reserved_upto",
    NULL, NULL
};

struct upto_ctx {
    int64_t upto;
    bool got;
};

static int upto_row(void *arg, const struct sh__row *row)
{
    struct upto_ctx *u = arg;

    u->upto = sh__row_int(row, 0);
    u->got = true;
    return 1;
}

static sh_err_t reserve(void *arg, const char *key, uint64_t n,
                        uint64_t *upto)
{
    sh_hub_t *hub = arg;
    struct sh__conn *c = NULL;
    struct sh__val p[2];
    struct upto_ctx u = { 0, false };
    char err[SH_ERRBUF_SIZE] = "";
    sh_err_t rc;

    *upto = 0;
    if (n > (uint64_t)INT64_MAX)
        return SH_EINVAL;
    p[0] = sh__v_text(key);
    p[1] = sh__v_int((int64_t)n);
    rc = sh__store_acquire(hub->store, &c);
    if (rc != SH_OK)
        return rc;
    rc = sh__store_exec(c, &q_reserve, p, 2, upto_row, &u, NULL, err,
                        sizeof err);
    sh__store_release(c);
    if (rc == SH_OK && (!u.got || u.upto < 0))
        rc = SH_ESTORE;
    if (rc != SH_OK) {
        sh__log_kv(&hub->log, SH_LOG_ERROR, "cannot reserve offsets",
                   "channel", key, "error", err, (char *)NULL);
        return rc;
    }
    *upto = (uint64_t)u.upto;
    return SH_OK;
}

static const struct sh__sql q_giveback = {
    "UPDATE bus_offsets SET reserved_upto = ? "
    "WHERE channel = ? AND reserved_upto = ?",
    NULL, NULL
};

static void giveback(void *arg, const char *key, uint64_t from, uint64_t to)
{
    sh_hub_t *hub = arg;
    struct sh__conn *c = NULL;
    struct sh__val p[3];

    if (from > (uint64_t)INT64_MAX || to > from)
        return;
    p[0] = sh__v_int((int64_t)to);
    p[1] = sh__v_text(key);
    p[2] = sh__v_int((int64_t)from);
    if (sh__store_acquire(hub->store, &c) != SH_OK)
        return;
    (void)sh__store_exec(c, &q_giveback, p, 3, NULL, NULL, NULL, NULL, 0);
    sh__store_release(c);
}

sh_err_t sh__offsets_attach(sh_hub_t *hub, char *errbuf, size_t errbuf_len)
{
    return sh__bus_set_reserver(
        hub->bus, reserve, giveback, hub, "chat:",
        (uint64_t)sh__config_int(hub->conf, "chat.offset-block"), errbuf,
        errbuf_len);
}
