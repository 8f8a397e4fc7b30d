/* exbus — the command (subcommands are dispatched in exb_cli.c). */
int exb_cli_main(int argc, char **argv);

int main(int argc, char **argv)
{
        return exb_cli_main(argc, argv);
}
