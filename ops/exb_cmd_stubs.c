/* Temporary: subcommands not written yet (removed as each lands). */
#include "exb_cli.h"
#define STUB(fn) int fn(exb_cli_t *cli, int argc, char **argv) { (void)cli; (void)argc; (void)argv; fprintf(stderr, "exbus: not yet\n"); return 2; }
STUB(exb_cmd_demo)
