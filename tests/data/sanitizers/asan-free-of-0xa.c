#include <stdlib.h>
void f(void){ char *p = malloc(32); free(p+16); }
void g(void){ free((void*)0xa); }
int main(int c, char**v){ if (c>1) g(); else f(); return 0; }
