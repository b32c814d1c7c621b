/* tests/unit/test_graphql_execute.c: the executor through
 * sh_graphql_execute() on a sqlite::memory: hub: queries and mutations of
 * the contract, error codes, variables, null propagation, fragments,
 * aliases, @skip/@include, @auth, @rateLimit and the batched user loads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "streamhub/streamhub.h"
#include "graphql/engine_int.h"
#include "services/hub_int.h"
#include "services/services_int.h"

#define SECRET "0123456789abcdef0123456789abcdef-test"

struct fx {
    sh_hub_t *hub;
    char alice[40], bob[40];
    char alice_stream[40];
};

static sh_hub_t *open_hub(const char *introspection)
{
    sh_config_t *c = NULL;
    sh_hub_t *hub = NULL;
    char err[SH_ERRBUF_SIZE];

    assert_int_equal(sh_config_new(&c), SH_OK);
    assert_int_equal(sh_config_set(c, "store", "sqlite::memory:", err,
                                   sizeof err), SH_OK);
    assert_int_equal(sh_config_set(c, "jwt-secret", SECRET, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_config_set(c, "log-level", "error", err, sizeof err),
                     SH_OK);
    if (introspection != NULL)
        assert_int_equal(sh_config_set(c, "graphql.introspection",
                                       introspection, err, sizeof err), SH_OK);
    assert_int_equal(sh_hub_open(c, &hub, err, sizeof err), SH_OK);
    return hub;
}

/* Run @q as @user (NULL: anonymous) with @vars; the parsed response. */
static json_object *run_as(sh_hub_t *hub, const char *user, const char *q,
                           const char *vars, int *status)
{
    sh_graphql_request_t *req = NULL;
    char *resp = NULL, err[SH_ERRBUF_SIZE];
    size_t len = 0;
    int st = 0;
    json_object *o;

    assert_int_equal(sh_graphql_request_new(&req), SH_OK);
    assert_int_equal(sh_graphql_request_set_query(req, q, strlen(q)), SH_OK);
    if (vars != NULL)
        assert_int_equal(sh_graphql_request_set_variables(req, vars,
                                                          strlen(vars)),
                         SH_OK);
    assert_int_equal(sh_graphql_request_set_identity(req, user, 1), SH_OK);
    assert_int_equal(sh_graphql_request_set_client_key(req, "127.0.0.1"),
                     SH_OK);
    assert_int_equal(sh_graphql_execute(hub, req, &resp, &len, &st, err,
                                        sizeof err), SH_OK);
    assert_non_null(resp);
    assert_int_equal(strlen(resp), len);
    o = json_tokener_parse(resp);
    assert_non_null(o);
    sh_graphql_free(resp);
    sh_graphql_request_free(req);
    if (status != NULL)
        *status = st;
    return o;
}

/* The value at a dotted path ("data.me.username", "errors.0.message"). */
static json_object *at(json_object *o, const char *path)
{
    char buf[256], *save = NULL;

    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = strtok_r(buf, ".", &save); p != NULL && o != NULL;
         p = strtok_r(NULL, ".", &save)) {
        if (json_object_is_type(o, json_type_array))
            o = json_object_array_get_idx(o, (size_t)strtoul(p, NULL, 10));
        else if (!json_object_object_get_ex(o, p, &o))
            return NULL;
    }
    return o;
}

static const char *sat(json_object *o, const char *path)
{
    json_object *v = at(o, path);

    return v != NULL ? json_object_get_string(v) : NULL;
}

static bool has(json_object *o, const char *path)
{
    char buf[256], *dot;

    snprintf(buf, sizeof buf, "%s", path);
    dot = strrchr(buf, '.');
    if (dot == NULL)
        return json_object_object_get_ex(o, buf, NULL);
    *dot = '\0';
    return json_object_object_get_ex(at(o, buf), dot + 1, NULL);
}

static void reg(sh_hub_t *hub, const char *name, char *id_out)
{
    char q[512];
    json_object *r;

    snprintf(q, sizeof q, "mutation { register(username: \"%s\", email: "
             "\"%s@example.com\", password: \"password123\") { accessToken "
             "expiresIn user { id username email } } }", name, name);
    r = run_as(hub, NULL, q, NULL, NULL);
    assert_null(at(r, "errors"));
    assert_string_equal(sat(r, "data.register.user.username"), name);
    assert_true(json_object_get_int(at(r, "data.register.expiresIn")) > 0);
    snprintf(id_out, 40, "%s", sat(r, "data.register.user.id"));
    json_object_put(r);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    json_object *r;

    f->hub = open_hub(NULL);
    reg(f->hub, "alice", f->alice);
    reg(f->hub, "bob", f->bob);
    r = run_as(f->hub, f->alice, "mutation { startStream(title: \"Hello "
               "world\", category: \"games\") { id status title } }", NULL,
               NULL);
    assert_null(at(r, "errors"));
    assert_string_equal(sat(r, "data.startStream.status"), "LIVE");
    snprintf(f->alice_stream, sizeof f->alice_stream, "%s",
             sat(r, "data.startStream.id"));
    json_object_put(r);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    sh_hub_close(f->hub);
    free(f);
    return 0;
}

static void expect_code(json_object *r, const char *code)
{
    const char *c = sat(r, "errors.0.extensions.code");

    if (c == NULL || strcmp(c, code) != 0)
        fail_msg("expected %s in %s", code,
                 json_object_to_json_string(r));
}

/* ---- tests ---------------------------------------------------------------- */

static void test_me_anonymous_and_authenticated(void **state)
{
    struct fx *f = *state;
    json_object *r = run_as(f->hub, NULL, "{ me { id } }", NULL, NULL);

    assert_true(has(r, "data.me"));
    assert_null(at(r, "data.me"));
    assert_null(at(r, "errors"));
    json_object_put(r);
    r = run_as(f->hub, f->alice, "{ me { id username email __typename } }",
               NULL, NULL);
    assert_string_equal(sat(r, "data.me.id"), f->alice);
    assert_string_equal(sat(r, "data.me.email"), "alice@example.com");
    assert_string_equal(sat(r, "data.me.__typename"), "User");
    json_object_put(r);
}

static void test_user_lookup_and_email_privacy(void **state)
{
    struct fx *f = *state;
    char q[256];
    json_object *r;

    snprintf(q, sizeof q, "{ user(id: \"%s\") { username email "
             "followedByMe } }", f->alice);
    r = run_as(f->hub, f->bob, q, NULL, NULL);
    assert_string_equal(sat(r, "data.user.username"), "alice");
    assert_null(at(r, "data.user.email"));
    assert_false(json_object_get_boolean(at(r, "data.user.followedByMe")));
    json_object_put(r);
    r = run_as(f->hub, NULL, "{ user(username: \"nobody\") { id } }", NULL,
               NULL);
    assert_null(at(r, "data.user"));
    assert_null(at(r, "errors"));
    json_object_put(r);
    /* neither or both: BAD_USER_INPUT, data.user null */
    r = run_as(f->hub, NULL, "{ user { id } }", NULL, NULL);
    expect_code(r, "BAD_USER_INPUT");
    assert_true(has(r, "data.user"));
    assert_string_equal(sat(r, "errors.0.path.0"), "user");
    assert_int_equal(json_object_get_int(at(r, "errors.0.locations.0.line")),
                     1);
    json_object_put(r);
}

static void test_follow_counts_and_connections(void **state)
{
    struct fx *f = *state;
    char q[512];
    json_object *r;

    snprintf(q, sizeof q, "mutation { follow(userId: \"%s\") { username "
             "followerCount followedByMe } }", f->alice);
    r = run_as(f->hub, f->bob, q, NULL, NULL);
    assert_null(at(r, "errors"));
    assert_int_equal(json_object_get_int(at(r, "data.follow.followerCount")),
                     1);
    assert_true(json_object_get_boolean(at(r, "data.follow.followedByMe")));
    json_object_put(r);
    snprintf(q, sizeof q, "{ user(id: \"%s\") { followers(first: 5) { "
             "totalCount edges { cursor node { username } } pageInfo { "
             "hasNextPage hasPreviousPage } } following { totalCount } "
             "currentStream { id title } } }", f->alice);
    r = run_as(f->hub, NULL, q, NULL, NULL);
    assert_null(at(r, "errors"));
    assert_int_equal(json_object_get_int(at(r,
        "data.user.followers.totalCount")), 1);
    assert_string_equal(sat(r, "data.user.followers.edges.0.node.username"),
                        "bob");
    assert_non_null(sat(r, "data.user.followers.edges.0.cursor"));
    assert_false(json_object_get_boolean(at(r,
        "data.user.followers.pageInfo.hasNextPage")));
    assert_string_equal(sat(r, "data.user.currentStream.id"),
                        f->alice_stream);
    json_object_put(r);
    /* following oneself: BAD_USER_INPUT, non-null field -> data null */
    snprintf(q, sizeof q, "mutation { follow(userId: \"%s\") { id } }",
             f->bob);
    r = run_as(f->hub, f->bob, q, NULL, NULL);
    expect_code(r, "BAD_USER_INPUT");
    assert_true(has(r, "data"));
    assert_null(at(r, "data"));
    json_object_put(r);
    snprintf(q, sizeof q, "mutation { unfollow(userId: \"%s\") { "
             "followerCount } }", f->alice);
    r = run_as(f->hub, f->bob, q, NULL, NULL);
    assert_int_equal(json_object_get_int(at(r,
        "data.unfollow.followerCount")), 0);
    json_object_put(r);
}

static void test_stream_fields(void **state)
{
    struct fx *f = *state;
    char q[512];
    json_object *r;

    snprintf(q, sizeof q, "{ stream(id: \"%s\") { id broadcaster { "
             "username createdAt } title category status viewerCount "
             "startedAt endedAt stats { peakViewers chatMessages "
             "uniqueChatters newFollowers messagesPerMinute } chatSettings "
             "{ slowModeSeconds followersOnly maxMessageLength blockedTerms "
             "} } }", f->alice_stream);
    r = run_as(f->hub, NULL, q, NULL, NULL);
    assert_null(at(r, "errors"));
    assert_string_equal(sat(r, "data.stream.broadcaster.username"), "alice");
    assert_non_null(sat(r, "data.stream.broadcaster.createdAt"));
    assert_string_equal(sat(r, "data.stream.category"), "games");
    assert_null(at(r, "data.stream.endedAt"));
    assert_int_equal(json_object_get_int(at(r,
        "data.stream.chatSettings.maxMessageLength")), 500);
    json_object_put(r);
    r = run_as(f->hub, NULL, "{ stream(id: \"nope\") { id } }", NULL, NULL);
    assert_null(at(r, "data.stream"));
    json_object_put(r);
    r = run_as(f->hub, NULL, "{ liveStreams { totalCount edges { node { "
               "title } } } searchStreams(query: \"hello\") { totalCount } }",
               NULL, NULL);
    assert_null(at(r, "errors"));
    assert_int_equal(json_object_get_int(at(r, "data.liveStreams.totalCount")),
                     1);
    assert_int_equal(json_object_get_int(at(r,
        "data.searchStreams.totalCount")), 1);
    json_object_put(r);
}

static void test_chat_send_history_delete(void **state)
{
    struct fx *f = *state;
    char q[512], id[64];
    json_object *r;

    snprintf(q, sizeof q, "mutation { sendMessage(streamId: \"%s\", text: "
             "\"hi there\") { id text offset author { username } streamId "
             "deleted } }", f->alice_stream);
    r = run_as(f->hub, f->bob, q, NULL, NULL);
    assert_null(at(r, "errors"));
    assert_string_equal(sat(r, "data.sendMessage.author.username"), "bob");
    snprintf(id, sizeof id, "%s", sat(r, "data.sendMessage.id"));
    json_object_put(r);
    /* empty text: BAD_USER_INPUT; anonymous: UNAUTHENTICATED */
    snprintf(q, sizeof q, "mutation { sendMessage(streamId: \"%s\", text: "
             "\"\") { id } }", f->alice_stream);
    r = run_as(f->hub, f->bob, q, NULL, NULL);
    expect_code(r, "BAD_USER_INPUT");
    json_object_put(r);
    r = run_as(f->hub, NULL, q, NULL, NULL);
    expect_code(r, "UNAUTHENTICATED");
    assert_null(at(r, "data"));
    json_object_put(r);
    snprintf(q, sizeof q, "{ chatHistory(streamId: \"%s\") { edges { "
             "cursor node { text author { username } } } pageInfo { "
             "hasPreviousPage startCursor } } }", f->alice_stream);
    r = run_as(f->hub, NULL, q, NULL, NULL);
    assert_null(at(r, "errors"));
    assert_string_equal(sat(r, "data.chatHistory.edges.0.node.text"),
                        "hi there");
    json_object_put(r);
    snprintf(q, sizeof q, "mutation { deleteMessage(messageId: \"%s\") }",
             id);
    r = run_as(f->hub, f->bob, q, NULL, NULL);
    expect_code(r, "FORBIDDEN");
    json_object_put(r);
    r = run_as(f->hub, f->alice, q, NULL, NULL);
    assert_true(json_object_get_boolean(at(r, "data.deleteMessage")));
    json_object_put(r);
}

static void test_moderation_and_settings(void **state)
{
    struct fx *f = *state;
    char q[768];
    json_object *r;

    snprintf(q, sizeof q, "mutation { a: timeoutUser(channelId: \"%s\", "
             "userId: \"%s\", seconds: 60) b: unbanUser(channelId: \"%s\", "
             "userId: \"%s\") c: banUser(channelId: \"%s\", userId: \"%s\", "
             "reason: \"spam\") d: addModerator(channelId: \"%s\", userId: "
             "\"%s\") e: removeModerator(channelId: \"%s\", userId: \"%s\") "
             "}", f->alice, f->bob, f->alice, f->bob, f->alice, f->bob,
             f->alice, f->bob, f->alice, f->bob);
    r = run_as(f->hub, f->alice, q, NULL, NULL);
    assert_null(at(r, "errors"));
    assert_true(json_object_get_boolean(at(r, "data.a")));
    assert_true(json_object_get_boolean(at(r, "data.e")));
    json_object_put(r);
    /* banned now: sending is FORBIDDEN */
    snprintf(q, sizeof q, "mutation { sendMessage(streamId: \"%s\", text: "
             "\"x\") { id } }", f->alice_stream);
    r = run_as(f->hub, f->bob, q, NULL, NULL);
    expect_code(r, "FORBIDDEN");
    json_object_put(r);
    snprintf(q, sizeof q, "mutation { updateChatSettings(channelId: \"%s\","
             " slowModeSeconds: 5, blockedTerms: \"bad\") { slowModeSeconds "
             "blockedTerms followersOnly } }", f->alice);
    r = run_as(f->hub, f->alice, q, NULL, NULL);
    assert_null(at(r, "errors"));
    assert_int_equal(json_object_get_int(at(r,
        "data.updateChatSettings.slowModeSeconds")), 5);
    /* a lone value for a list argument is a list of one (input coercion) */
    assert_string_equal(sat(r, "data.updateChatSettings.blockedTerms.0"),
                        "bad");
    json_object_put(r);
    r = run_as(f->hub, f->bob, q, NULL, NULL);
    expect_code(r, "FORBIDDEN");
    json_object_put(r);
}

static void test_variables_coercion(void **state)
{
    struct fx *f = *state;
    int st = 0;
    json_object *r;
    const char *q = "query Q($id: ID!, $n: Int = 3) { stream(id: $id) { id "
                    "} liveStreams(first: $n) { totalCount } }";
    char vars[128];

    snprintf(vars, sizeof vars, "{\"id\":\"%s\"}", f->alice_stream);
    r = run_as(f->hub, NULL, q, vars, &st);
    assert_int_equal(st, 200);
    assert_string_equal(sat(r, "data.stream.id"), f->alice_stream);
    json_object_put(r);
    /* missing, null, wrong type, out of range, not an object, bad JSON */
    const char *bad[] = { "{}", "{\"id\":null}", "{\"id\":true}",
                          "{\"id\":\"x\",\"n\":\"3\"}",
                          "{\"id\":\"x\",\"n\":2147483648}",
                          "{\"id\":\"x\",\"n\":1.5}", "[1]", "{\"id\":",
                          "" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = run_as(f->hub, NULL, q, bad[i], &st);
        assert_int_equal(st, 400);
        assert_false(has(r, "data"));
        expect_code(r, "BAD_USER_INPUT");
        json_object_put(r);
    }
    /* an Int variable given as 3.0 is an Int; an ID as a number a string */
    snprintf(vars, sizeof vars, "{\"id\":12,\"n\":3.0}");
    r = run_as(f->hub, NULL, q, vars, &st);
    assert_int_equal(st, 200);
    assert_null(at(r, "data.stream"));
    json_object_put(r);
    /* first: 0 is refused by the service: a field error, data null */
    r = run_as(f->hub, NULL, q, "{\"id\":\"x\",\"n\":0}", &st);
    assert_int_equal(st, 200);
    expect_code(r, "BAD_USER_INPUT");
    assert_null(at(r, "data"));
    json_object_put(r);
}

static void test_request_errors(void **state)
{
    struct fx *f = *state;
    int st = 0;
    json_object *r;
    const char *bad[] = { "", "{", "{ nope }", "{ me }", "query { me { id } "
                          "} query { me { id } }", "{ me { id } } \xc3\x28",
                          "subscription { liveStreams { kind } }" };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = run_as(f->hub, NULL, bad[i], NULL, &st);
        assert_int_equal(st, 400);
        assert_false(has(r, "data"));
        assert_non_null(sat(r, "errors.0.message"));
        json_object_put(r);
    }
    /* embedded NUL: a syntax error, not a truncated query */
    {
        sh_graphql_request_t *req = NULL;
        char *resp = NULL;
        assert_int_equal(sh_graphql_request_new(&req), SH_OK);
        assert_int_equal(sh_graphql_request_set_query(req, "{ me { id } }\0x",
                                                      15), SH_OK);
        assert_int_equal(sh_graphql_execute(f->hub, req, &resp, NULL, &st,
                                            NULL, 0), SH_OK);
        assert_int_equal(st, 400);
        sh_graphql_free(resp);
        sh_graphql_request_free(req);
    }
    /* API misuse */
    {
        char *resp = (char *)1;
        assert_int_equal(sh_graphql_execute(NULL, NULL, &resp, NULL, NULL,
                                            NULL, 0), SH_EINVAL);
        assert_null(resp);
        assert_int_equal(sh_graphql_request_set_query(NULL, "x", 1),
                         SH_EINVAL);
        sh_graphql_request_free(NULL);
        sh_graphql_free(NULL);
    }
    /* operationName picks one of several */
    {
        sh_graphql_request_t *req = NULL;
        char *resp = NULL;
        const char *q = "query A { me { id } } query B { __typename }";
        assert_int_equal(sh_graphql_request_new(&req), SH_OK);
        sh_graphql_request_set_query(req, q, strlen(q));
        sh_graphql_request_set_operation_name(req, "B");
        assert_int_equal(sh_graphql_execute(f->hub, req, &resp, NULL, &st,
                                            NULL, 0), SH_OK);
        assert_int_equal(st, 200);
        assert_string_equal(resp, "{\"data\":{\"__typename\":\"Query\"}}");
        sh_graphql_free(resp);
        sh_graphql_request_free(req);
    }
}

static void test_fragments_aliases_directives(void **state)
{
    struct fx *f = *state;
    json_object *r;
    char q[768];

    snprintf(q, sizeof q,
             "query($no: Boolean!) { s: stream(id: \"%s\") { ...F "
             "... on Stream { t2: title } title @skip(if: true) "
             "category @include(if: $no) ...G @skip(if: $no) } } "
             "fragment F on Stream { t1: title broadcaster { ...U } } "
             "fragment U on User { username } "
             "fragment G on Stream { status }", f->alice_stream);
    r = run_as(f->hub, NULL, q, "{\"no\":false}", NULL);
    assert_null(at(r, "errors"));
    assert_string_equal(sat(r, "data.s.t1"), "Hello world");
    assert_string_equal(sat(r, "data.s.t2"), "Hello world");
    assert_string_equal(sat(r, "data.s.broadcaster.username"), "alice");
    assert_false(has(r, "data.s.title"));
    assert_false(has(r, "data.s.category"));
    assert_string_equal(sat(r, "data.s.status"), "LIVE");
    /* result keys in selection order */
    {
        json_object *s = at(r, "data.s");
        const char *order[] = { "t1", "broadcaster", "t2", "status" };
        size_t i = 0;
        json_object_object_foreach(s, k, v) {
            (void)v;
            assert_true(i < 4);
            assert_string_equal(k, order[i++]);
        }
    }
    json_object_put(r);
}

static void test_auth_directive(void **state)
{
    struct fx *f = *state;
    json_object *r;

    r = run_as(f->hub, NULL, "{ notifications { unreadCount } }", NULL, NULL);
    expect_code(r, "UNAUTHENTICATED");
    assert_string_equal(sat(r, "errors.0.path.0"), "notifications");
    assert_null(at(r, "data"));
    json_object_put(r);
    r = run_as(f->hub, f->alice, "{ notifications(first: 5) { unreadCount "
               "edges { node { type data read createdAt } } pageInfo { "
               "hasNextPage } } }", NULL, NULL);
    assert_null(at(r, "errors"));
    assert_non_null(at(r, "data.notifications.edges"));
    json_object_put(r);
    r = run_as(f->hub, f->alice, "mutation { markNotificationsRead }", NULL,
               NULL);
    assert_null(at(r, "errors"));
    assert_true(json_object_is_type(at(r, "data.markNotificationsRead"),
                                    json_type_int));
    json_object_put(r);
}

static void test_rate_limit_directive(void **state)
{
    struct fx *f = *state;
    json_object *r;
    int refused = 0;

    /* login: @rateLimit(limit: 10, window: 60) per client key */
    for (int i = 0; i < 15; i++) {
        r = run_as(f->hub, NULL, "mutation { login(username: \"nobody\", "
                   "password: \"password123\") { accessToken } }", NULL,
                   NULL);
        const char *code = sat(r, "errors.0.extensions.code");
        assert_non_null(code);
        if (strcmp(code, "RATE_LIMITED") == 0) {
            refused++;
            assert_true(i >= 10);   /* the bucket holds 10 */
            assert_true(json_object_get_int(at(r,
                "errors.0.extensions.retryAfter")) >= 1);
        } else {
            assert_string_equal(code, "UNAUTHENTICATED");
        }
        json_object_put(r);
    }
    /* a token comes back every 6 s: at least one of the 5 is refused */
    assert_true(refused >= 1);
}

static void test_null_propagation(void **state)
{
    struct fx *f = *state;
    json_object *r;
    char q[512];

    /* stopStream by someone else: FORBIDDEN; Stream! of a mutation root
     * -> data null; the nullable sibling before it kept?  No: the root
     * object itself is nulled (data: null). */
    snprintf(q, sizeof q, "mutation { a: refreshToken(refreshToken: \"x\") "
             "{ accessToken } }");
    r = run_as(f->hub, NULL, q, NULL, NULL);
    expect_code(r, "UNAUTHENTICATED");
    assert_true(has(r, "data"));
    assert_null(at(r, "data"));
    json_object_put(r);
    /* a nullable parent stops the climb: user is nullable */
    snprintf(q, sizeof q, "{ me { id } user(id: \"%s\") { followers(first: "
             "0) { totalCount } } }", f->alice);
    r = run_as(f->hub, f->alice, q, NULL, NULL);
    expect_code(r, "BAD_USER_INPUT");
    assert_string_equal(sat(r, "data.me.id"), f->alice);
    assert_true(has(r, "data.user"));
    assert_null(at(r, "data.user"));
    assert_string_equal(sat(r, "errors.0.path.1"), "followers");
    json_object_put(r);
}

static void test_stream_lifecycle_and_raid(void **state)
{
    struct fx *f = *state;
    json_object *r;
    char q[512], sid[64];

    r = run_as(f->hub, f->alice, "mutation { startStream(title: \"again\") "
               "{ id } }", NULL, NULL);
    expect_code(r, "CONFLICT");
    json_object_put(r);
    r = run_as(f->hub, f->bob, "mutation { startStream(title: \"bob live\") "
               "{ id } }", NULL, NULL);
    snprintf(sid, sizeof sid, "%s", sat(r, "data.startStream.id"));
    json_object_put(r);
    snprintf(q, sizeof q, "mutation { updateStream(streamId: \"%s\", title: "
             "\"new\") { title } }", sid);
    r = run_as(f->hub, f->bob, q, NULL, NULL);
    assert_string_equal(sat(r, "data.updateStream.title"), "new");
    json_object_put(r);
    snprintf(q, sizeof q, "mutation { startRaid(fromStreamId: \"%s\", "
             "toUserId: \"%s\") { id viewerCount from { title broadcaster "
             "{ username } } to { username } createdAt } }", sid, f->alice);
    r = run_as(f->hub, f->bob, q, NULL, NULL);
    assert_null(at(r, "errors"));
    assert_string_equal(sat(r, "data.startRaid.from.title"), "new");
    assert_string_equal(sat(r, "data.startRaid.to.username"), "alice");
    json_object_put(r);
    snprintf(q, sizeof q, "mutation { subscribeToChannel(channelId: \"%s\")"
             " { tier subscriber { username } channel { username createdAt }"
             " } }", f->alice);
    r = run_as(f->hub, f->bob, q, NULL, NULL);
    assert_null(at(r, "errors"));
    assert_int_equal(json_object_get_int(at(r,
        "data.subscribeToChannel.tier")), 1);
    assert_string_equal(sat(r, "data.subscribeToChannel.channel.username"),
                        "alice");
    json_object_put(r);
    snprintf(q, sizeof q, "mutation { stopStream(streamId: \"%s\") { status"
             " endedAt } }", sid);
    r = run_as(f->hub, f->alice, q, NULL, NULL);
    expect_code(r, "FORBIDDEN");
    json_object_put(r);
    r = run_as(f->hub, f->bob, q, NULL, NULL);
    assert_string_equal(sat(r, "data.stopStream.status"), "OFFLINE");
    json_object_put(r);
    r = run_as(f->hub, f->bob, q, NULL, NULL);
    expect_code(r, "CONFLICT");
    json_object_put(r);
    r = run_as(f->hub, NULL, "mutation { stopStream(streamId: \"x\") { id } "
               "}", NULL, NULL);
    expect_code(r, "UNAUTHENTICATED");
    json_object_put(r);
}

static void test_login_and_refresh(void **state)
{
    struct fx *f = *state;
    json_object *r;
    char q[512];

    r = run_as(f->hub, NULL, "mutation { login(username: \"ALICE\", "
               "password: \"password123\") { refreshToken user { id } } }",
               NULL, NULL);
    assert_string_equal(sat(r, "data.login.user.id"), f->alice);
    snprintf(q, sizeof q, "mutation { refreshToken(refreshToken: \"%s\") { "
             "accessToken user { username } } }",
             sat(r, "data.login.refreshToken"));
    json_object_put(r);
    r = run_as(f->hub, NULL, q, NULL, NULL);
    assert_string_equal(sat(r, "data.refreshToken.user.username"), "alice");
    json_object_put(r);
    r = run_as(f->hub, NULL, "mutation { register(username: \"alice\", "
               "email: \"x@example.com\", password: \"password123\") { "
               "accessToken } }", NULL, NULL);
    expect_code(r, "CONFLICT");
    json_object_put(r);
}

/* DataLoader: 20 live streams of 20 broadcasters, their users' rows in one
 * batched statement, not one per stream. */
static void test_broadcasters_load_in_one_batch(void **state)
{
    sh_hub_t *hub = open_hub(NULL);
    char id[40];
    uint64_t before, used;
    json_object *r;

    (void)state;
    for (int i = 0; i < 20; i++) {
        char name[16], q[256];
        char email[64];
        sh_auth_t *a = NULL;
        snprintf(name, sizeof name, "caster%02d", i);
        snprintf(email, sizeof email, "%s@example.com", name);
        assert_int_equal(sh_auth_register(hub, name, email, "password123",
                                          &a, NULL, 0), SH_OK);
        snprintf(id, sizeof id, "%s", sh_user_id(sh_auth_user(a)));
        sh_auth_free(a);
        snprintf(q, sizeof q, "mutation { startStream(title: \"s%d\") { id "
                 "} }", i);
        r = run_as(hub, id, q, NULL, NULL);
        assert_null(at(r, "errors"));
        json_object_put(r);
    }
    before = sh__store_exec_count(hub->store);
    r = run_as(hub, NULL, "{ liveStreams(first: 20) { edges { node { "
               "broadcaster { username createdAt } } } } }", NULL, NULL);
    used = sh__store_exec_count(hub->store) - before;
    assert_null(at(r, "errors"));
    assert_int_equal(json_object_array_length(at(r,
        "data.liveStreams.edges")), 20);
    assert_non_null(sat(r, "data.liveStreams.edges.19.node.broadcaster."
                           "createdAt"));
    json_object_put(r);
    if (used > 5)
        fail_msg("%llu statements for 20 broadcasters",
                 (unsigned long long)used);
    sh_hub_close(hub);
}

/* User.followerCount / followingCount of a list: one batched statement
 * for the 20 broadcasters (not one per user), through a fragment too, and
 * the same numbers as sh_follow_counts(). */
static void test_follower_counts_load_in_one_batch(void **state)
{
    sh_hub_t *hub = open_hub(NULL);
    char ids[20][40];
    uint64_t before, used;
    json_object *r;

    (void)state;
    for (int i = 0; i < 20; i++) {
        char name[16], q[256];
        char email[64];
        sh_auth_t *a = NULL;
        snprintf(name, sizeof name, "caster%02d", i);
        snprintf(email, sizeof email, "%s@example.com", name);
        assert_int_equal(sh_auth_register(hub, name, email, "password123",
                                          &a, NULL, 0), SH_OK);
        snprintf(ids[i], sizeof ids[i], "%s", sh_user_id(sh_auth_user(a)));
        sh_auth_free(a);
        snprintf(q, sizeof q, "mutation { startStream(title: \"s%d\") { id "
                 "} }", i);
        r = run_as(hub, ids[i], q, NULL, NULL);
        assert_null(at(r, "errors"));
        json_object_put(r);
    }
    /* caster i is followed by the i casters before it */
    for (int i = 0; i < 20; i++)
        for (int j = 0; j < i; j++)
            assert_int_equal(sh_follow(hub, ids[j], ids[i], NULL, NULL, 0),
                             SH_OK);
    before = sh__store_exec_count(hub->store);
    r = run_as(hub, NULL, "{ liveStreams(first: 20) { edges { node { "
               "broadcaster { id username followerCount ...F } } } } } "
               "fragment F on User { followingCount }", NULL, NULL);
    used = sh__store_exec_count(hub->store) - before;
    assert_null(at(r, "errors"));
    assert_int_equal(json_object_array_length(at(r,
        "data.liveStreams.edges")), 20);
    for (int e = 0; e < 20; e++) {
        char path[96];
        const char *id;
        int64_t fol = -1, fing = -1;
        snprintf(path, sizeof path,
                 "data.liveStreams.edges.%d.node.broadcaster", e);
        id = sh__jstr(at(r, path), "id");
        assert_non_null(id);
        assert_int_equal(sh_follow_counts(hub, id, &fol, &fing, NULL, 0),
                         SH_OK);
        assert_int_equal(sh__jint(at(r, path), "followerCount"), fol);
        assert_int_equal(sh__jint(at(r, path), "followingCount"), fing);
    }
    json_object_put(r);
    if (used > 5)
        fail_msg("%llu statements for 20 broadcasters' counts",
                 (unsigned long long)used);
    sh_hub_close(hub);
}

/* The transport's subscription API: prepare once, format each event with
 * the client's selection. */
static void test_subscription_prepare_and_format(void **state)
{
    struct fx *f = *state;
    struct sh__gql_sub *sub = NULL;
    json_object *resp = NULL, *data, *payload = NULL;
    char q[512];
    const char *text;

    snprintf(q, sizeof q, "subscription($s: ID!) { c: chatMessages("
             "streamId: $s, sinceOffset: 4, sinceEpoch: \"e0\") { kind "
             "epoch offset message { text author { username } } userId } }");
    {
        char vars[128];
        snprintf(vars, sizeof vars, "{\"s\":\"%s\"}", f->alice_stream);
        assert_int_equal(sh__gql_sub_prepare(f->hub, q, strlen(q), vars,
                                             strlen(vars), NULL, NULL, 0,
                                             &sub, &resp), SH_OK);
    }
    assert_null(resp);
    snprintf(q, sizeof q, "chat:%s", f->alice_stream);
    assert_string_equal(sh__gql_sub_channel(sub), q);
    assert_int_equal(sh__gql_sub_since(sub), 4);
    assert_string_equal(sh__gql_sub_since_epoch(sub), "e0");
    snprintf(q, sizeof q, "{\"id\":\"m1\",\"streamId\":\"%s\",\"author\":"
             "{\"id\":\"%s\",\"username\":\"bob\"},\"text\":\"yo\","
             "\"offset\":5,\"createdAt\":\"2026-01-01T00:00:00.000Z\","
             "\"deleted\":false}", f->alice_stream, f->bob);
    data = json_tokener_parse(q);
    assert_int_equal(sh__gql_sub_format(sub, "chat.message", data, "e1", 5,
                                        &payload), SH_OK);
    text = json_object_to_json_string_ext(payload, JSON_C_TO_STRING_PLAIN);
    assert_string_equal(text, "{\"data\":{\"c\":{\"kind\":\"MESSAGE\","
                        "\"epoch\":\"e1\",\"offset\":5,\"message\":"
                        "{\"text\":\"yo\",\"author\":{\"username\":\"bob\"}},"
                        "\"userId\":null}}}");
    json_object_put(payload);
    assert_int_equal(sh__gql_sub_format(sub, "stream.live", data, "e1", 6,
                                        &payload), SH_ENOTFOUND);
    assert_null(payload);
    json_object_put(data);
    sh__gql_sub_free(sub);
    /* notifications needs an identity; a query is not a subscription */
    snprintf(q, sizeof q, "subscription { notifications { id } }");
    assert_int_equal(sh__gql_sub_prepare(f->hub, q, strlen(q), NULL, 0, NULL,
                                         NULL, 0, &sub, &resp), SH_EINVAL);
    assert_null(sub);
    expect_code(resp, "UNAUTHENTICATED");
    json_object_put(resp);
    snprintf(q, sizeof q, "{ me { id } }");
    assert_int_equal(sh__gql_sub_prepare(f->hub, q, strlen(q), NULL, 0, NULL,
                                         NULL, 0, &sub, &resp), SH_EINVAL);
    assert_non_null(at(resp, "errors.0.message"));
    json_object_put(resp);
    snprintf(q, sizeof q, "subscription { liveStreams { kind } "
             "streamUpdates(streamId: \"x\") { kind } }");
    assert_int_equal(sh__gql_sub_prepare(f->hub, q, strlen(q), NULL, 0, NULL,
                                         NULL, 0, &sub, &resp), SH_EINVAL);
    json_object_put(resp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_me_anonymous_and_authenticated,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_lookup_and_email_privacy,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_follow_counts_and_connections,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_send_history_delete, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_moderation_and_settings, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_variables_coercion, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_request_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fragments_aliases_directives,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_directive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_directive, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_null_propagation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_lifecycle_and_raid, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_login_and_refresh, setup,
                                        teardown),
        cmocka_unit_test(test_broadcasters_load_in_one_batch),
        cmocka_unit_test(test_follower_counts_load_in_one_batch),
        cmocka_unit_test_setup_teardown(test_subscription_prepare_and_format,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
