/* libstreamhub/graphql/graphql_int.h: the GraphQL engine's internals.
 *
 * The engine serves exactly api/schema.graphql (compiled in as
 * schema.graphql).  Pipeline: sh__gql_parse() (size limit, lexer, parser
 * with a nesting limit) -> sh__gql_validate() (spec section 5) ->
 * sh__gql_check_limits() (depth, cost, aliases) -> sh__gql_get_operation()
 * -> the executor.  This area depends only on core.
 *
 * Memory: a document and everything in it lives in one arena freed at once
 * by sh__gql_doc_free().  The schema keeps its own arena (the SDL's AST is
 * the schema model's backing store).  Errors are malloc'ed and outlive the
 * document, so that they can be rendered after it is gone.
 *
 * Locations follow graphql-js: line and column are 1-based; a line ends at
 * "\n", "\r\n" or "\r"; the column counts UTF-16 code units (a code point
 * above U+FFFF counts 2), as a JavaScript string index would.
 *
 * @locality any thread; a schema is immutable once built and may be shared
 * by threads; a document and an error list belong to one thread at a time.
 */
#ifndef SH_GRAPHQL_INT_H
#define SH_GRAPHQL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "core/core_int.h"

/* ---- arena ----------------------------------------------------------- */

struct sh__gql_arena;

/* NULL on ENOMEM. */
struct sh__gql_arena *sh__gql_arena_new(void);
/* Frees every block at once; NULL is a no-op. */
void sh__gql_arena_free(struct sh__gql_arena *a);
/* Zeroed, aligned for any object; NULL on ENOMEM. */
void *sh__gql_arena_alloc(struct sh__gql_arena *a, size_t n);
/* A NUL-terminated copy of @len bytes of @s; NULL on ENOMEM. */
char *sh__gql_arena_strndup(struct sh__gql_arena *a, const char *s,
                            size_t len);

/* ---- errors ---------------------------------------------------------- */

struct sh__gql_loc {
    uint32_t line, column;   /* 1-based; 0/0: none */
};

#define SH__GQL_MAX_LOCS 4
/* At most this many errors are kept; validation stops there, like
 * graphql-js's maxErrors. */
#define SH__GQL_MAX_ERRORS 100

struct sh__gql_error {
    char *message;                          /* owned */
    struct sh__gql_loc locs[SH__GQL_MAX_LOCS];
    size_t nlocs;
    const char *code;        /* extensions.code (static string) or NULL */
    struct sh__gql_error *next;
};

/* A list of errors.  Zero-initialise; release with sh__gql_errors_clear().
 * Invariant: count == length of the list; oom is set when an error could
 * not be recorded (the caller then answers SH_ENOMEM). */
struct sh__gql_errors {
    struct sh__gql_error *head, *tail;
    size_t count;
    bool oom;
    bool full;               /* SH__GQL_MAX_ERRORS reached */
};

/* Append an error; on ENOMEM sets errs->oom.  @locs may be NULL/0. */
void sh__gql_error_add(struct sh__gql_errors *errs, const char *code,
                       const struct sh__gql_loc *locs, size_t nlocs,
                       const char *fmt, ...) SH__PRINTF(5, 6);
void sh__gql_errors_clear(struct sh__gql_errors *errs);
/* The GraphQL response `errors` array: [{message, locations:[{line,
 * column}], extensions:{code}}]; NULL on ENOMEM.  Caller puts it. */
json_object *sh__gql_errors_to_json(const struct sh__gql_errors *errs);

/* ---- limits ---------------------------------------------------------- */

struct sh__gql_limits {
    size_t max_document_bytes;   /* graphql.max-document-bytes */
    int64_t max_depth;           /* graphql.max-depth */
    int64_t max_cost;            /* graphql.max-cost */
    int64_t max_aliases;         /* graphql.max-aliases */
    uint32_t max_nesting;        /* parser recursion bound (512) */
};

#define SH__GQL_MAX_NESTING 512

/* The defaults of config_table.c. */
void sh__gql_limits_default(struct sh__gql_limits *lim);
/* Read the graphql.* keys of a validated configuration. */
void sh__gql_limits_from_config(struct sh__gql_limits *lim,
                                const sh_config_t *conf);

/* ---- lexer ----------------------------------------------------------- */

enum sh__gql_tok {
    SH__GQL_TOK_SOF, SH__GQL_TOK_EOF, SH__GQL_TOK_BANG, SH__GQL_TOK_DOLLAR,
    SH__GQL_TOK_AMP, SH__GQL_TOK_PAREN_L, SH__GQL_TOK_PAREN_R,
    SH__GQL_TOK_SPREAD, SH__GQL_TOK_COLON, SH__GQL_TOK_EQUALS,
    SH__GQL_TOK_AT, SH__GQL_TOK_BRACKET_L, SH__GQL_TOK_BRACKET_R,
    SH__GQL_TOK_BRACE_L, SH__GQL_TOK_PIPE, SH__GQL_TOK_BRACE_R,
    SH__GQL_TOK_NAME, SH__GQL_TOK_INT, SH__GQL_TOK_FLOAT,
    SH__GQL_TOK_STRING, SH__GQL_TOK_BLOCK_STRING
};

/* graphql-js's description of a kind: "<EOF>", "\"{\"", "Name"... */
const char *sh__gql_tok_kind_desc(enum sh__gql_tok kind);

struct sh__gql_token {
    enum sh__gql_tok kind;
    size_t start, end;          /* byte offsets into the source */
    struct sh__gql_loc loc;
    /* NAME, INT, FLOAT: points into the source; strings: decoded UTF-8 in
     * the arena, NUL-terminated, may hold NUL (use len). */
    const char *value;
    size_t len;
};

/* Invariants: pos <= len; (line, col) is the location of byte cpos, and
 * cpos <= every offset still to be located (locations only move on). */
struct sh__gql_lexer {
    const char *src;
    size_t len, pos;
    size_t cpos;
    uint32_t line, col;
    struct sh__gql_arena *arena;     /* borrowed: decoded strings */
    struct sh__gql_token tok;        /* the current token */
    struct sh__gql_token ahead;      /* valid when has_ahead */
    bool has_ahead;
    /* Set on the first error: message (graphql-js wording, without the
     * "Syntax Error: " prefix) and where. */
    bool failed, oom;
    char msg[160];
    struct sh__gql_loc err_loc;
};

/* Start lexing (the current token is <SOF>).  @src must be valid UTF-8
 * (sh__gql_utf8_check()). */
void sh__gql_lexer_init(struct sh__gql_lexer *lx, const char *src,
                        size_t len, struct sh__gql_arena *arena);
/* Move to the next token; false on a syntax error or ENOMEM (lx->failed,
 * lx->oom), the current token then being <EOF>. */
bool sh__gql_lexer_advance(struct sh__gql_lexer *lx);
/* The token after the current one without consuming it; NULL on error. */
const struct sh__gql_token *sh__gql_lexer_lookahead(struct sh__gql_lexer *lx);
/* Location of byte @off (>= every offset located before). */
struct sh__gql_loc sh__gql_lexer_locate(struct sh__gql_lexer *lx,
                                        size_t off);
/* Offset of the first byte that is not valid UTF-8 (overlong forms,
 * surrogates and code points past U+10FFFF are invalid); @len if none. */
size_t sh__gql_utf8_check(const char *s, size_t len);
/* The spec's BlockStringValue() over @raw (the text between the quotes,
 * escaped triple quotes already replaced); writes at most @len bytes to
 * @out and returns the length. */
size_t sh__gql_block_string_value(const char *raw, size_t len, char *out);

/* ---- AST ------------------------------------------------------------- */

enum sh__gql_value_kind {
    SH__GQL_V_VARIABLE,
    SH__GQL_V_INT,
    SH__GQL_V_FLOAT,
    SH__GQL_V_STRING,
    SH__GQL_V_BOOLEAN,
    SH__GQL_V_NULL,
    SH__GQL_V_ENUM,
    SH__GQL_V_LIST,
    SH__GQL_V_OBJECT
};

struct sh__gql_value;

struct sh__gql_object_field {
    const char *name;
    struct sh__gql_loc loc;
    struct sh__gql_value *value;
    struct sh__gql_object_field *next;
};

/* One literal.  @str is the variable or enum name, the raw text of an Int
 * or Float, or the decoded bytes of a String (which may hold NUL: @len). */
struct sh__gql_value {
    enum sh__gql_value_kind kind;
    struct sh__gql_loc loc;
    const char *str;
    size_t len;
    bool boolean;
    bool block;                          /* a block string */
    struct sh__gql_value *items;         /* LIST */
    struct sh__gql_object_field *fields; /* OBJECT */
    struct sh__gql_value *next;          /* next item of a list */
};

struct sh__gql_type;

enum sh__gql_typeref_kind { SH__GQL_T_NAMED, SH__GQL_T_LIST, SH__GQL_T_NONNULL };

struct sh__gql_typeref {
    enum sh__gql_typeref_kind kind;
    struct sh__gql_loc loc;
    const char *name;                  /* NAMED */
    const struct sh__gql_typeref *of;  /* LIST, NONNULL */
    /* NAMED in the schema's SDL: the type, resolved when it is built. */
    const struct sh__gql_type *type;
};

struct sh__gql_argument {
    const char *name;
    struct sh__gql_loc loc;
    struct sh__gql_value *value;
    struct sh__gql_argument *next;
};

struct sh__gql_directive {
    const char *name;
    struct sh__gql_loc loc;
    struct sh__gql_argument *args;
    struct sh__gql_directive *next;
};

enum sh__gql_sel_kind { SH__GQL_S_FIELD, SH__GQL_S_SPREAD, SH__GQL_S_INLINE };

struct sh__gql_selection {
    enum sh__gql_sel_kind kind;
    struct sh__gql_loc loc;
    const char *alias;                   /* FIELD; NULL when none */
    const char *name;                    /* FIELD; SPREAD: fragment name */
    struct sh__gql_argument *args;       /* FIELD */
    struct sh__gql_directive *directives;
    const char *type_cond;               /* INLINE; NULL when none */
    struct sh__gql_loc type_cond_loc;
    struct sh__gql_selection *selset;    /* FIELD, INLINE; NULL: none */
    bool has_selset;
    struct sh__gql_selection *next;
};

/* A variable definition, or in SDL an argument / input value definition. */
struct sh__gql_input_def {
    const char *name;
    struct sh__gql_loc loc;
    const char *description;
    struct sh__gql_typeref *type;
    struct sh__gql_value *defval;        /* NULL: none */
    struct sh__gql_directive *directives;
    struct sh__gql_input_def *next;
};

/* SDL: a field definition, or (without type) an enum value definition. */
struct sh__gql_field_def {
    const char *name;
    struct sh__gql_loc loc;
    const char *description;
    struct sh__gql_input_def *args;
    struct sh__gql_typeref *type;
    struct sh__gql_directive *directives;
    struct sh__gql_field_def *next;
};

struct sh__gql_name_list {
    const char *name;
    struct sh__gql_loc loc;
    struct sh__gql_name_list *next;
};

enum sh__gql_def_kind {
    SH__GQL_D_OPERATION,
    SH__GQL_D_FRAGMENT,
    /* type system (SDL) definitions; not executable */
    SH__GQL_D_SCHEMA,
    SH__GQL_D_SCALAR,
    SH__GQL_D_OBJECT,
    SH__GQL_D_INTERFACE,
    SH__GQL_D_UNION,
    SH__GQL_D_ENUM,
    SH__GQL_D_INPUT,
    SH__GQL_D_DIRECTIVE,
    SH__GQL_D_EXTENSION
};

enum sh__gql_op { SH__GQL_QUERY, SH__GQL_MUTATION, SH__GQL_SUBSCRIPTION };

struct sh__gql_definition {
    enum sh__gql_def_kind kind;
    struct sh__gql_loc loc;
    enum sh__gql_op op;                  /* OPERATION */
    const char *name;                    /* NULL: anonymous operation */
    struct sh__gql_loc name_loc;
    struct sh__gql_input_def *vars;      /* OPERATION */
    struct sh__gql_directive *directives;
    const char *type_cond;               /* FRAGMENT */
    struct sh__gql_loc type_cond_loc;
    struct sh__gql_selection *selset;    /* OPERATION, FRAGMENT */
    /* SDL */
    const char *description;
    struct sh__gql_field_def *fields;    /* OBJECT, INTERFACE, ENUM values */
    struct sh__gql_input_def *args;      /* DIRECTIVE, INPUT fields */
    struct sh__gql_name_list *names;     /* DIRECTIVE locations, UNION
                                          * members, OBJECT interfaces */
    bool repeatable;
    struct sh__gql_definition *next;
};

struct sh__gql_doc {
    struct sh__gql_arena *arena;         /* owns everything below */
    struct sh__gql_definition *defs;
    size_t ndefs;
    const char *text;                    /* borrowed from the caller */
    size_t len;
};

/* Parse an executable document (type-system definitions are parsed too,
 * for the ExecutableDefinitions rule to reject).  @text is @len bytes,
 * need not be terminated and may hold NUL (a syntax error).
 *
 * Returns SH_OK with *out set; SH_ETOOBIG (document over
 * lim->max_document_bytes: one error, code QUERY_TOO_COMPLEX, nothing
 * lexed); SH_EINVAL (a syntax error in @errs); SH_ENOMEM.
 * Ownership: *out is the caller's (sh__gql_doc_free()); it borrows @text
 * until then. */
sh_err_t sh__gql_parse(const char *text, size_t len,
                       const struct sh__gql_limits *lim,
                       struct sh__gql_doc **out,
                       struct sh__gql_errors *errs);
void sh__gql_doc_free(struct sh__gql_doc *doc);

/* Print a value as graphql-js's print() would (for messages); NULL on
 * ENOMEM.  The result is malloc'ed. */
char *sh__gql_value_print(const struct sh__gql_value *v);
/* Print a type reference ("[Int!]!") into @buf; truncated to fit. */
void sh__gql_typeref_print(const struct sh__gql_typeref *t, char *buf,
                           size_t len);

/* ---- schema model ---------------------------------------------------- */

enum sh__gql_kind {
    SH__GQL_K_SCALAR,
    SH__GQL_K_OBJECT,
    SH__GQL_K_INTERFACE,
    SH__GQL_K_UNION,
    SH__GQL_K_ENUM,
    SH__GQL_K_INPUT_OBJECT
};

/* Directive locations, as bits (graphql-js DirectiveLocation order). */
enum sh__gql_dirloc {
    SH__GQL_L_QUERY, SH__GQL_L_MUTATION, SH__GQL_L_SUBSCRIPTION,
    SH__GQL_L_FIELD, SH__GQL_L_FRAGMENT_DEFINITION,
    SH__GQL_L_FRAGMENT_SPREAD, SH__GQL_L_INLINE_FRAGMENT,
    SH__GQL_L_VARIABLE_DEFINITION, SH__GQL_L_SCHEMA, SH__GQL_L_SCALAR,
    SH__GQL_L_OBJECT, SH__GQL_L_FIELD_DEFINITION,
    SH__GQL_L_ARGUMENT_DEFINITION, SH__GQL_L_INTERFACE, SH__GQL_L_UNION,
    SH__GQL_L_ENUM, SH__GQL_L_ENUM_VALUE, SH__GQL_L_INPUT_OBJECT,
    SH__GQL_L_INPUT_FIELD_DEFINITION, SH__GQL_L_DIRECTIVE_DEFINITION,
    SH__GQL_L_COUNT
};
/* "FIELD_DEFINITION" etc.; NULL when out of range. */
const char *sh__gql_dirloc_name(enum sh__gql_dirloc loc);

struct sh__gql_arg_def {
    const char *name;
    const char *description;                /* NULL: none */
    const struct sh__gql_typeref *type;
    const struct sh__gql_value *defval;     /* NULL: none */
    bool deprecated;
    const char *deprecation_reason;
};

struct sh__gql_field {
    const char *name;
    const char *description;
    const struct sh__gql_typeref *type;
    const struct sh__gql_arg_def *args;
    size_t nargs;
    /* Field directives of the SDL (@auth, @rateLimit(limit, window)). */
    const struct sh__gql_directive *directives;
    bool deprecated;
    const char *deprecation_reason;
};

struct sh__gql_enum_value {
    const char *name;
    const char *description;
    bool deprecated;
    const char *deprecation_reason;
};

struct sh__gql_type {
    const char *name;
    enum sh__gql_kind kind;
    const char *description;
    const struct sh__gql_field *fields;     /* OBJECT */
    size_t nfields;
    const struct sh__gql_enum_value *values;/* ENUM */
    size_t nvalues;
    const char *specified_by;               /* SCALAR; NULL: none */
    bool builtin;    /* built-in scalar or introspection type */
};

struct sh__gql_directive_def {
    const char *name;
    const char *description;
    const struct sh__gql_arg_def *args;
    size_t nargs;
    uint32_t locations;                     /* bits of enum sh__gql_dirloc */
    bool repeatable;
};

struct sh__gql_schema {
    struct sh__gql_arena *arena;            /* owns everything */
    struct sh__gql_doc *docs[2];            /* owned: the SDL, the prelude */
    const struct sh__gql_type **types;      /* every type, SDL order then
                                             * built-ins (introspection) */
    size_t ntypes;
    const struct sh__gql_directive_def **directives;
    size_t ndirectives;
    const struct sh__gql_type *query, *mutation, *subscription;
    /* Meta fields: __typename (any composite), __schema and __type (the
     * query root only). */
    const struct sh__gql_field *meta_typename, *meta_schema, *meta_type;
};

/* The SDL compiled in from schema.graphql. */
extern const char sh__gql_schema_sdl[];
extern const size_t sh__gql_schema_sdl_len;

/* Build the schema model from @sdl (@len bytes) plus the built-in scalars,
 * directives and introspection types.  SH_EINVAL with a message in
 * @errbuf when the SDL does not parse or names an unknown type; SH_ENOMEM.
 * Ownership: *out is the caller's (sh__gql_schema_free()). */
sh_err_t sh__gql_schema_build(const char *sdl, size_t len,
                              struct sh__gql_schema **out,
                              char *errbuf, size_t errbuf_len);
/* The StreamHub schema (sh__gql_schema_sdl). */
sh_err_t sh__gql_schema_new(struct sh__gql_schema **out, char *errbuf,
                            size_t errbuf_len);
void sh__gql_schema_free(struct sh__gql_schema *schema);

/* Lookups; NULL when absent.  Field lookup knows the meta fields. */
const struct sh__gql_type *sh__gql_schema_type(
    const struct sh__gql_schema *s, const char *name);
const struct sh__gql_field *sh__gql_type_field(
    const struct sh__gql_schema *s, const struct sh__gql_type *t,
    const char *name);
const struct sh__gql_arg_def *sh__gql_field_arg(
    const struct sh__gql_field *f, const char *name);
const struct sh__gql_directive_def *sh__gql_schema_directive(
    const struct sh__gql_schema *s, const char *name);
const struct sh__gql_arg_def *sh__gql_directive_arg(
    const struct sh__gql_directive_def *d, const char *name);
const struct sh__gql_enum_value *sh__gql_enum_value(
    const struct sh__gql_type *t, const char *name);
/* The named type under any list/non-null wrappers; NULL when unknown. */
const struct sh__gql_type *sh__gql_typeref_named(
    const struct sh__gql_schema *s, const struct sh__gql_typeref *t);
/* The root type of @op; NULL when the schema has none. */
const struct sh__gql_type *sh__gql_schema_root(
    const struct sh__gql_schema *s, enum sh__gql_op op);
static inline bool sh__gql_kind_is_composite(enum sh__gql_kind k)
{
    return k == SH__GQL_K_OBJECT || k == SH__GQL_K_INTERFACE ||
           k == SH__GQL_K_UNION;
}
static inline bool sh__gql_kind_is_leaf(enum sh__gql_kind k)
{
    return k == SH__GQL_K_SCALAR || k == SH__GQL_K_ENUM;
}

/* ---- validation, limits, operation selection -------------------------- */

/* Check @doc against @schema (spec section 5).  Errors are appended to
 * @errs in document order, graphql-js wording.  Returns SH_OK when valid,
 * SH_EINVAL when not, SH_ENOMEM. */
sh_err_t sh__gql_validate(const struct sh__gql_schema *schema,
                          const struct sh__gql_doc *doc,
                          struct sh__gql_errors *errs);

/* Check @op of a validated @doc against @lim: depth (a nested
 * __Type.ofType adds none, so that standard introspection passes), cost
 * (each field 1; a field with a first/last argument multiplies its
 * subtree by that value: literal, else @variables' value, else the
 * variable's default, else the argument's default), aliases plus root
 * fields.  @variables (a JSON object) may be NULL.  Each excess is an
 * error with code QUERY_TOO_COMPLEX.  SH_OK, SH_ETOOBIG, SH_ENOMEM. */
sh_err_t sh__gql_check_limits(const struct sh__gql_schema *schema,
                              const struct sh__gql_doc *doc,
                              const struct sh__gql_definition *op,
                              const json_object *variables,
                              const struct sh__gql_limits *lim,
                              struct sh__gql_errors *errs);

/* The spec's GetOperation(document, operationName): @name NULL picks the
 * lone operation.  SH_OK with *out; SH_EINVAL with one error ("Must
 * provide operation name if query contains multiple operations.",
 * "Unknown operation named \"x\".", "Must provide an operation."). */
sh_err_t sh__gql_get_operation(const struct sh__gql_doc *doc,
                               const char *name,
                               const struct sh__gql_definition **out,
                               struct sh__gql_errors *errs);

/* The fragment definition named @name; NULL when absent. */
const struct sh__gql_definition *sh__gql_doc_fragment(
    const struct sh__gql_doc *doc, const char *name);

#endif
