/* tests/fuzz/fuzz_graphql.c: arbitrary bytes through the GraphQL pipeline
 * (size limit, lexer, parser, validation, operation selection, limits),
 * the way a request body reaches it.  Invariants checked: a document comes
 * back iff the parse succeeded, every error has a message, and a syntax
 * error carries exactly one location. */
#include <stdlib.h>
#include <string.h>

#include "graphql/graphql_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Built once: the schema is immutable and shared, as in the server. */
static struct sh__gql_schema *schema;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sh__gql_errors errs = { 0 };
    struct sh__gql_limits lim;
    struct sh__gql_doc *doc = NULL;
    const struct sh__gql_definition *op = NULL;

    if (schema == NULL && sh__gql_schema_new(&schema, NULL, 0) != SH_OK)
        abort();
    sh__gql_limits_default(&lim);
    /* a copy of exactly size bytes: ASan sees any read past the end */
    char *text = malloc(size ? size : 1);
    if (text == NULL)
        return 0;
    if (size > 0)
        memcpy(text, data, size);
    sh_err_t rc = sh__gql_parse(text, size, &lim, &doc, &errs);
    if ((rc == SH_OK) != (doc != NULL))
        abort();
    if (rc == SH_EINVAL && (errs.count != 1 || errs.head->nlocs != 1))
        abort();
    if (rc == SH_OK && sh__gql_validate(schema, doc, &errs) == SH_OK &&
        sh__gql_get_operation(doc, NULL, &op, &errs) == SH_OK)
        (void)sh__gql_check_limits(schema, doc, op, NULL, &lim, &errs);
    for (const struct sh__gql_error *e = errs.head; e; e = e->next)
        if (e->message == NULL || e->message[0] == '\0')
            abort();
    json_object *j = sh__gql_errors_to_json(&errs);
    json_object_put(j);
    sh__gql_errors_clear(&errs);
    sh__gql_doc_free(doc);
    free(text);
    return 0;
}
