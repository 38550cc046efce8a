/* main.c: the coffre binary: dispatches to the server and client commands. */
#include <stdio.h>

int main(int argc, char **argv) {
        (void) argc;
        (void) argv;
        fprintf(stderr, "coffre: not yet\n");
        return 1;
}
