/* Hyperscan headers bindgen reads. Only the allowlisted items in build.rs are emitted. */
#include <hs.h>
