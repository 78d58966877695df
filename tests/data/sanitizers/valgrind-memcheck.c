#include <stdlib.h>
#include <stdio.h>
int main(){ int *p = malloc(200); free(p); fprintf(stderr,"a\n"); int x = p[1]; free(p); int *q = malloc(16); free(q+2); int *r=malloc(8); r[3]=1; return x; }
