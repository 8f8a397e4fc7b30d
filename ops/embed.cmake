# Writes OUT, a C file defining exb_sample_catalog[] with the bytes of IN.
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(LENGTH "${hex}" n)
math(EXPR n "${n} / 2")
file(WRITE ${OUT} "/* Generated from ops/examples/catalog.json by ops/embed.cmake. */\n#include <stddef.h>\nconst unsigned char exb_sample_catalog[] = {${bytes}0};\nconst size_t exb_sample_catalog_len = ${n};\n")
