/* The cleave binary: see app/cli.c for the subcommands. */
#include "host.h"

int main(int argc, char **argv)
{
    return cleave_main(argc, argv);
}
