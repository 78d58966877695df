int table[8];
__attribute__((noinline)) int engine_put(int i) { table[i] = 1; return table[i]; }
int main(int c, char **v) { return engine_put(7 + c); }
