#!/usr/bin/env bash
# The C library as another project uses it: `cmake --install` of the build in $1 into a fresh
# prefix, then examples/ built against that copy with find_package (shared and static) and with
# pkg-config, and run on the bundled files. The shared library must export the C API only.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build/ctest}
CMAKE=${CMAKE:-cmake}
PREFIX=$PWD/build/c-install
rm -rf "$PREFIX" build/examples
"$CMAKE" --install "$BUILD" --prefix "$PREFIX" > /dev/null
LIBDIR=$(dirname "$(find "$PREFIX" -name 'libsqllm.so' | head -n 1)")
test -f "$PREFIX/include/sqllm/sqllm.h" && test -f "$LIBDIR/libsqllm.a" && test -f "$LIBDIR/pkgconfig/sqllm.pc"
exported=$(nm -D --defined-only "$LIBDIR/libsqllm.so" | awk '{print $3}' | grep -v '^sqllm_' || true)
if [ -n "$exported" ]; then
    echo "libsqllm.so exports more than the C API:"; echo "$exported" | head; exit 1
fi

"$CMAKE" -S examples -B build/examples -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_BUILD_TYPE=Release > /dev/null
"$CMAKE" --build build/examples -j "${JOBS:-2}" > /dev/null
PKG_CONFIG_PATH="$LIBDIR/pkgconfig" cc -std=c99 -Wall -Wextra -Werror -o build/examples/sqllm_info_pkgconfig \
    examples/sqllm_info.c $(PKG_CONFIG_PATH="$LIBDIR/pkgconfig" pkg-config --cflags --libs sqllm) -Wl,-rpath,"$LIBDIR"

for exe in sqllm_info sqllm_info_static sqllm_info_pkgconfig; do
    build/examples/$exe tests/data/golden.sqf | grep -q "qwen2: 1 layers" || { echo "$exe: unexpected output"; exit 1; }
done
for exe in sqllm_generate sqllm_generate_static; do
    build/examples/$exe tests/data/stories260K-q4.sqf "Once upon a time" 24 2> /dev/null | grep -Eq "Once upon a time.*[a-z]+ [a-z]+" \
        || { echo "$exe: unexpected output"; exit 1; }
done
if ldd build/examples/sqllm_info_static | grep -q libsqllm; then echo "sqllm_info_static links libsqllm.so"; exit 1; fi
echo "check-c-install: installed into $PREFIX; examples built with find_package (shared, static) and pkg-config, and run"
