#include <stdio.h>
int exb_cli_main(int argc, char **argv)
{
        (void)argc; (void)argv;
        fprintf(stderr, "exbus: not yet\n");
        return 2;
}
