/* include/streamhub/types.h: the export macro and the opaque handles that
 * every area of the API shares.
 *
 * Handles are opaque: their layout is private and may change in any release.
 * The only public structs are frozen values whose size is asserted by the
 * library's tests (tests/abi/).
 */
#ifndef STREAMHUB_TYPES_H
#define STREAMHUB_TYPES_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#  if defined(SH_BUILDING_LIBRARY)
#    define SH_API __declspec(dllexport)
#  else
#    define SH_API
#  endif
#elif defined(__GNUC__) || defined(__clang__)
#  define SH_API __attribute__((visibility("default")))
#else
#  define SH_API
#endif

#if defined(__GNUC__) || defined(__clang__)
#  define SH_DEPRECATED __attribute__((deprecated))
#else
#  define SH_DEPRECATED
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* A configuration under construction; see config.h. */
typedef struct sh_config sh_config_t;
/* One StreamHub instance: a store, a bus and the services; see hub.h. */
typedef struct sh_hub sh_hub_t;

#ifdef __cplusplus
}
#endif

#endif
