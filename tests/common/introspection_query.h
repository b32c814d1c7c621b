/* tests/common/introspection_query.h: the standard introspection query,
 * as graphql-js v16's getIntrospectionQuery() prints it with its default
 * options, for the GraphQL tests and benchmarks (one copy for all). */
#ifndef SH_TEST_INTROSPECTION_QUERY_H
#define SH_TEST_INTROSPECTION_QUERY_H

static const char introspection_query[] =
    "\n    query IntrospectionQuery {\n      __schema {\n        \n"
    "        queryType { name }\n        mutationType { name }\n"
    "        subscriptionType { name }\n        types {\n"
    "          ...FullType\n        }\n        directives {\n"
    "          name\n          description\n          \n"
    "          locations\n          args {\n            ...InputValue\n"
    "          }\n        }\n      }\n    }\n\n"
    "    fragment FullType on __Type {\n      kind\n      name\n"
    "      description\n      \n      fields(includeDeprecated: true) {\n"
    "        name\n        description\n        args {\n"
    "          ...InputValue\n        }\n        type {\n"
    "          ...TypeRef\n        }\n        isDeprecated\n"
    "        deprecationReason\n      }\n      inputFields {\n"
    "        ...InputValue\n      }\n      interfaces {\n"
    "        ...TypeRef\n      }\n      enumValues(includeDeprecated: true) {\n"
    "        name\n        description\n        isDeprecated\n"
    "        deprecationReason\n      }\n      possibleTypes {\n"
    "        ...TypeRef\n      }\n    }\n\n"
    "    fragment InputValue on __InputValue {\n      name\n"
    "      description\n      type { ...TypeRef }\n      defaultValue\n"
    "      \n      \n    }\n\n    fragment TypeRef on __Type {\n"
    "      kind\n      name\n      ofType {\n        kind\n        name\n"
    "        ofType {\n          kind\n          name\n          ofType {\n"
    "            kind\n            name\n            ofType {\n"
    "              kind\n              name\n              ofType {\n"
    "                kind\n                name\n"
    "                ofType {\n                  kind\n"
    "                  name\n                  ofType {\n"
    "                    kind\n                    name\n"
    "                  }\n                }\n              }\n"
    "            }\n          }\n        }\n      }\n    }\n  ";

#endif
