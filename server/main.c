/* server/main.c: streamhubd, the reference server on libstreamhub.
 *
 * Glue only, on the public API (streamhub/streamhub.h):
 *  1. configuration: defaults, then the file of --config, then STREAMHUB_*
 *     variables, then --key value / --key=value flags, so that a flag beats
 *     the environment, which beats the file (api/PROTOCOL.md, Configuration).
 *     Flags are checked by sh_config_set() as they are applied; a bad key or
 *     value exits 2 with the library's message, which names it.
 *  2. the process: RLIMIT_NOFILE soft raised to hard (one connection is one
 *     descriptor), SIGTERM/SIGINT/SIGHUP blocked before any thread exists so
 *     that every thread the hub starts inherits the mask and the signals are
 *     taken by sigwaitinfo() here, never by a handler; SIGPIPE ignored (a
 *     write to a reset connection fails with EPIPE instead).
 *  3. the hub and its gateway on one libevent loop: the hub attached to the
 *     loop, the gateway listening on `listen`, "streamhubd listening on
 *     HOST:PORT" printed with the bound port once it accepts.  The signals
 *     arrive through a signalfd watched by the loop.  SIGTERM/SIGINT: the
 *     gateway stops accepting, sends 1001 to every WebSocket and finishes
 *     the HTTP requests in flight (at most 8 s), then the hub closes,
 *     flushing the write-behind queue to the store; exit 0.  SIGHUP reopens
 *     the logs (stderr needs nothing).
 *
 * --check stops after step 1: it reports whether the configuration (file,
 * environment, flags) is valid, without opening the store or a port, so
 * that a deployment can check a file before it restarts the service.
 * --help-config prints a config file with every key commented out at its
 * default (deploy/streamhub.conf is that output, a few keys set).
 *
 * Exit codes: 0 after a clean shutdown (and for --help, --version, a
 * --check that passed), 1 when the hub cannot start, 2 for a usage or
 * configuration error.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <json-c/json.h>

#include <streamhub/gateway.h>
#include <streamhub/streamhub.h>

/* The gateway's grace for in-flight work; the whole stop stays under the
 * 10 s a supervisor gives between SIGTERM and SIGKILL. */
#define SHUTDOWN_GRACE_MS 8000

#define EXIT_USAGE 2

/* One --key value flag, kept until the file and the environment are in. */
struct flag {
    const char *key;   /* borrowed from argv; for --key=value, a copy */
    const char *value; /* borrowed from argv */
    char *owned;       /* the copy of "key" for the --key=value form */
};

struct opts {
    const char *config_path; /* borrowed from argv; NULL: none */
    struct flag *flags;      /* owned, nflags entries */
    size_t nflags;
    bool help, help_markdown, help_config, version, check;
};

static void opts_free(struct opts *o)
{
    for (size_t i = 0; i < o->nflags; i++)
        free(o->flags[i].owned);
    free(o->flags);
    o->flags = NULL;
    o->nflags = 0;
}

/* The variable sh_config_load_env() reads for @key, into @buf. */
static void env_name(const char *key, char *buf, size_t len)
{
    size_t n = 0;

    if (len == 0)
        return;
    n = (size_t)snprintf(buf, len, "STREAMHUB_");
    for (const char *p = key; *p != '\0' && n + 1 < len; p++) {
        char ch = *p;
        if (ch == '-' || ch == '.')
            ch = '_';
        else if (ch >= 'a' && ch <= 'z')
            ch = (char)(ch - 'a' + 'A');
        buf[n++] = ch;
    }
    buf[n < len ? n : len - 1] = '\0';
}

static void print_usage(FILE *out)
{
    const char *name, *def, *doc;

    fprintf(out,
            "usage: streamhubd [--config FILE] [--KEY VALUE | --KEY=VALUE]...\n"
            "       streamhubd [--config FILE] [--KEY VALUE]... --check\n"
            "       streamhubd --help | --help-markdown | --help-config | "
            "--version\n"
            "\n"
            "Runs a StreamHub server.  Each key below may come from the file\n"
            "of --config (`key = value` lines), from the environment\n"
            "(STREAMHUB_ + the key in capitals, '-' and '.' as '_') or from\n"
            "a flag; a flag beats the environment, which beats the file.\n"
            "\n"
            "Keys (default in brackets):\n");
    for (size_t i = 0; sh_config_describe(i, &name, &def, &doc) == SH_OK;
         i++) {
        fprintf(out, "  --%s [%s]\n      %s\n", name,
                def[0] != '\0' ? def : "none", doc);
    }
}

/* Markdown table cells: '|' would end the cell, a newline the row. */
static void md_cell(FILE *out, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '|')
            fputs("\\|", out);
        else if (*s == '\n')
            fputc(' ', out);
        else
            fputc(*s, out);
    }
}

/* docs/CONFIG.md is exactly this output (tests/abi checks that it is). */
static void print_markdown(FILE *out)
{
    const char *name, *def, *doc;
    char var[160];

    fputs("# StreamHub configuration\n"
          "\n"
          "<!-- Generated by `streamhubd --help-markdown` from the key table "
          "of\n"
          "     libstreamhub/core/config_table.c; do not edit by hand.\n"
          "     Regenerate with scripts/update-config-doc.sh. -->\n"
          "\n"
          "One key/value model serves the C API (`sh_config_set()`), the "
          "config file\n"
          "(`streamhubd --config FILE`: one `key = value` a line, blank "
          "lines and lines\n"
          "starting with `#` ignored), environment variables and "
          "`streamhubd` flags\n"
          "(`--key value` or `--key=value`).  A flag beats the environment, "
          "which beats\n"
          "the file.  Every value is checked when it is set; a bad key or "
          "value stops\n"
          "`streamhubd` with exit status 2 and a message naming it.\n"
          "\n"
          "| key | default | environment variable | meaning |\n"
          "| --- | --- | --- | --- |\n", out);
    for (size_t i = 0; sh_config_describe(i, &name, &def, &doc) == SH_OK;
         i++) {
        env_name(name, var, sizeof var);
        fputs("| `", out);
        md_cell(out, name);
        fputs("` | ", out);
        if (def[0] != '\0') {
            fputc('`', out);
            md_cell(out, def);
            fputc('`', out);
        } else {
            fputs("(none)", out);
        }
        fprintf(out, " | `%s` | ", var);
        md_cell(out, doc);
        fputs(" |\n", out);
    }
}

/* Comment lines "# " + @text, wrapped before column 79. */
static void conf_comment(FILE *out, const char *text)
{
    const size_t width = 76;

    while (*text != '\0') {
        size_t n = strlen(text), cut = n;

        if (n > width) {
            cut = width;
            while (cut > 0 && text[cut] != ' ')
                cut--;
            if (cut == 0)           /* one word longer than a line */
                cut = strcspn(text, " ");
        }
        fprintf(out, "# %.*s\n", (int)cut, text);
        text += cut;
        while (*text == ' ')
            text++;
    }
}

/* A config file with every key commented out at its default, its doc
 * above it (deploy/streamhub.conf; tests/deploy checks that file). */
static void print_config(FILE *out)
{
    const char *name, *def, *doc;

    fputs("# streamhubd configuration: streamhubd --config FILE\n"
          "#\n"
          "# Generated by `streamhubd --help-config` from the key table of\n"
          "# libstreamhub/core/config_table.c: every key, commented out at "
          "its\n"
          "# default.  One `key = value` a line; lines starting with `#` are "
          "comments.\n"
          "# A STREAMHUB_* variable beats this file, and a --key flag beats "
          "both.\n"
          "# `streamhubd --config FILE --check` checks a file.\n", out);
    for (size_t i = 0; sh_config_describe(i, &name, &def, &doc) == SH_OK;
         i++) {
        fputc('\n', out);
        conf_comment(out, doc);
        if (def[0] != '\0')
            fprintf(out, "#%s = %s\n", name, def);
        else
            fprintf(out, "#%s =\n", name);
    }
}

static bool is_key(const char *key)
{
    const char *name;

    for (size_t i = 0; sh_config_describe(i, &name, NULL, NULL) == SH_OK;
         i++) {
        if (strcmp(name, key) == 0)
            return true;
    }
    return false;
}

static int add_flag(struct opts *o, const char *key, const char *value,
                    char *owned)
{
    struct flag *f = realloc(o->flags, (o->nflags + 1) * sizeof *f);

    if (f == NULL) {
        free(owned);
        fprintf(stderr, "streamhubd: out of memory\n");
        return 1;
    }
    o->flags = f;
    f[o->nflags].key = owned != NULL ? owned : key;
    f[o->nflags].value = value;
    f[o->nflags].owned = owned;
    o->nflags++;
    return 0;
}

/* Parse argv into @o.  Returns 0, or the exit status after a message. */
static int parse_args(int argc, char **argv, struct opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *eq, *value;
        char *key = NULL;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            o->help = true;
            continue;
        }
        if (strcmp(arg, "--help-markdown") == 0) {
            o->help_markdown = true;
            continue;
        }
        if (strcmp(arg, "--version") == 0) {
            o->version = true;
            continue;
        }
        if (strcmp(arg, "--help-config") == 0) {
            o->help_config = true;
            continue;
        }
        if (strcmp(arg, "--check") == 0) {
            o->check = true;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            fprintf(stderr, "streamhubd: unexpected argument '%s' "
                    "(see --help)\n", arg);
            return EXIT_USAGE;
        }
        arg += 2;
        eq = strchr(arg, '=');
        if (eq != NULL) {
            key = strndup(arg, (size_t)(eq - arg));
            if (key == NULL) {
                fprintf(stderr, "streamhubd: out of memory\n");
                return 1;
            }
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            fprintf(stderr, "streamhubd: --%s needs a value\n", arg);
            return EXIT_USAGE;
        }
        if (strcmp(key != NULL ? key : arg, "config") == 0) {
            free(key);
            o->config_path = value;
            continue;
        }
        if (!is_key(key != NULL ? key : arg)) {
            fprintf(stderr, "streamhubd: unknown configuration key '%s' "
                    "(see --help)\n", key != NULL ? key : arg);
            free(key);
            return EXIT_USAGE;
        }
        if (add_flag(o, arg, value, key) != 0)
            return 1;
    }
    return 0;
}

/* Defaults, file, environment, flags: later ones win. */
static int build_config(const struct opts *o, sh_config_t **out)
{
    char err[SH_ERRBUF_SIZE];
    sh_config_t *conf = NULL;
    sh_err_t rc;

    *out = NULL;
    rc = sh_config_new(&conf);
    if (rc != SH_OK) {
        fprintf(stderr, "streamhubd: %s\n", sh_strerror(rc));
        return 1;
    }
    if (o->config_path != NULL) {
        rc = sh_config_load_file(conf, o->config_path, err, sizeof err);
        if (rc != SH_OK) {
            fprintf(stderr, "streamhubd: %s\n", err);
            goto fail;
        }
    }
    rc = sh_config_load_env(conf, err, sizeof err);
    if (rc != SH_OK) {
        fprintf(stderr, "streamhubd: %s\n", err);
        goto fail;
    }
    for (size_t i = 0; i < o->nflags; i++) {
        rc = sh_config_set(conf, o->flags[i].key, o->flags[i].value, err,
                           sizeof err);
        if (rc != SH_OK) {
            fprintf(stderr, "streamhubd: --%s: %s\n", o->flags[i].key, err);
            goto fail;
        }
    }
    *out = conf;
    return 0;
fail:
    sh_config_free(conf);
    return EXIT_USAGE;
}

/* Raise the soft RLIMIT_NOFILE to the hard one; report both in @fields. */
static void raise_nofile(json_object *fields)
{
    struct rlimit rl;
    rlim_t before;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        json_object_object_add(fields, "error",
                               json_object_new_string(strerror(errno)));
        return;
    }
    before = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            json_object_object_add(fields, "error",
                                   json_object_new_string(strerror(errno)));
            rl.rlim_cur = before;
        }
    }
    json_object_object_add(fields, "soft_before",
                           json_object_new_int64((int64_t)before));
    json_object_object_add(fields, "soft",
                           json_object_new_int64((int64_t)rl.rlim_cur));
    json_object_object_add(fields, "hard",
                           rl.rlim_max == RLIM_INFINITY
                               ? json_object_new_string("unlimited")
                               : json_object_new_int64((int64_t)rl.rlim_max));
}

static void hub_log_fields(sh_hub_t *hub, sh_log_level_t level,
                           const char *msg, json_object *fields)
{
    sh_hub_log(hub, level, msg,
               fields != NULL ? json_object_to_json_string_ext(
                                    fields, JSON_C_TO_STRING_PLAIN)
                              : NULL);
}

struct run {
    sh_hub_t *hub;
    sh_gateway_t *gw;
    struct event_base *base;
    int sfd;
    int signal;             /* the one that stopped us, 0 if none */
};

static void stopped(void *arg)
{
    struct run *r = arg;

    event_base_loopexit(r->base, NULL);
}

/* A signal arrived on the signalfd: SIGHUP reopens logs; SIGTERM/SIGINT
 * start the graceful stop (a second one is ignored: the stop is bounded). */
static void on_signal(evutil_socket_t fd, short what, void *arg)
{
    struct run *r = arg;
    struct signalfd_siginfo si;
    json_object *fields;

    (void)what;
    while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGHUP) {
            sh_hub_log(r->hub, SH_LOG_INFO,
                       "SIGHUP received, logs reopened", NULL);
            continue;
        }
        if (r->signal != 0)
            continue;
        r->signal = (int)si.ssi_signo;
        fields = json_object_new_object();
        if (fields != NULL)
            json_object_object_add(fields, "signal",
                                   json_object_new_string(
                                       r->signal == SIGINT ? "SIGINT"
                                                           : "SIGTERM"));
        hub_log_fields(r->hub, SH_LOG_INFO, "shutting down", fields);
        json_object_put(fields);
        sh_gateway_shutdown(r->gw, SHUTDOWN_GRACE_MS, stopped, r);
    }
}

/* Serve until a signal stops us; @scheme: the console's ("" when it is
 * off), said once ready.  Returns the process status. */
static int serve(sh_hub_t *hub, const sigset_t *set, const char *scheme)
{
    struct run r = { .hub = hub, .sfd = -1 };
    struct event *sev = NULL;
    char err[SH_ERRBUF_SIZE];
    int status = 1;

    if (evthread_use_pthreads() != 0 || (r.base = event_base_new()) == NULL) {
        fprintf(stderr, "streamhubd: cannot create the event loop\n");
        return 1;
    }
    r.sfd = signalfd(-1, set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (r.sfd < 0) {
        fprintf(stderr, "streamhubd: signalfd: %s\n", strerror(errno));
        goto out;
    }
    sev = event_new(r.base, r.sfd, EV_READ | EV_PERSIST, on_signal, &r);
    if (sev == NULL || event_add(sev, NULL) != 0)
        goto out;
    if (sh_hub_attach(hub, r.base, err, sizeof err) != SH_OK ||
        sh_gateway_start(hub, r.base, &r.gw, err, sizeof err) != SH_OK) {
        fprintf(stderr, "streamhubd: cannot start: %s\n", err);
        goto out;
    }
    sh_hub_log(hub, SH_LOG_INFO, "ready", NULL);
    printf("streamhubd listening on %s\n", sh_gateway_address(r.gw));
    /* The first thing a newcomer needs: where to look. */
    if (scheme[0] != '\0')
        printf("streamhubd console at %s://%s/ (GraphiQL at /graphql)\n",
               scheme, sh_gateway_address(r.gw));
    fflush(stdout);
    event_base_dispatch(r.base);
    status = r.signal != 0 ? 0 : 1;
out:
    sh_gateway_free(r.gw);
    if (sev != NULL)
        event_free(sev);
    if (r.sfd >= 0)
        close(r.sfd);
    /* The hub closes after the gateway and before the base: its dispatcher
     * event lives on the base. */
    sh_hub_close(hub);
    event_base_free(r.base);
    return status;
}

int main(int argc, char **argv)
{
    struct opts o = { 0 };
    char err[SH_ERRBUF_SIZE];
    json_object *fields;
    sh_config_t *conf = NULL;
    sh_hub_t *hub = NULL;
    const char *scheme = "";   /* the console's, or "" when it is off */
    sigset_t set;
    sh_err_t rc;
    int status;

    status = parse_args(argc, argv, &o);
    if (status != 0)
        goto out;
    if (o.help) {
        print_usage(stdout);
        goto out;
    }
    if (o.help_markdown) {
        print_markdown(stdout);
        goto out;
    }
    if (o.help_config) {
        print_config(stdout);
        goto out;
    }
    if (o.version) {
        printf("streamhubd %s\n", sh_version());
        goto out;
    }
    status = build_config(&o, &conf);
    if (status != 0 || o.check) {
        if (status == 0)
            printf("streamhubd: configuration ok\n");
        goto out;
    }
    /* A peer that resets its connection makes the next write to it fail
     * with EPIPE, which by default also kills the process with SIGPIPE
     * (libevent writes with writev, not send(MSG_NOSIGNAL)): one client
     * could stop the server.  The write's error closes the connection. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        fprintf(stderr, "streamhubd: signal: %s\n", strerror(errno));
        status = 1;
        goto out;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) {
        fprintf(stderr, "streamhubd: sigprocmask: %s\n", strerror(errno));
        status = 1;
        goto out;
    }
    fields = json_object_new_object();
    if (fields != NULL)
        raise_nofile(fields);
    {
        char v[8];
        size_t vl = sizeof v;

        /* The hub takes the config: what serve() says is read now.  A
         * bool reads back as set: off is one of false, 0, no, off. */
        if (sh_config_get(conf, "console", v, &vl) == SH_OK &&
            strcasecmp(v, "false") != 0 && strcmp(v, "0") != 0 &&
            strcasecmp(v, "no") != 0 && strcasecmp(v, "off") != 0) {
            vl = sizeof v;
            /* tls-cert set (too long for v, or not): TLS. */
            scheme = sh_config_get(conf, "tls-cert", v, &vl) != SH_OK ||
                             vl > 0
                         ? "https"
                         : "http";
        }
    }

    rc = sh_hub_open(conf, &hub, err, sizeof err);
    if (rc != SH_OK) {
        fprintf(stderr, "streamhubd: cannot start: %s (%s)\n", err,
                sh_err_name(rc));
        json_object_put(fields);
        status = 1;
        goto out;
    }
    conf = NULL; /* the hub owns it now */
    hub_log_fields(hub, SH_LOG_INFO, "open files limit", fields);
    json_object_put(fields);

    status = serve(hub, &set, scheme);
out:
    sh_config_free(conf);
    opts_free(&o);
    return status;
}
