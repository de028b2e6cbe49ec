// A plain Verilator C++ harness for lowbit_system: the same RTL as the cocotb runs, with no
// VPI and no Python. It preloads the simulation DRAM, starts a program through the CSR port,
// toggles the clock until the interrupt, and prints one JSON object: cycles, wall time,
// counters and the bytes of the requested DRAM ranges. csr_map.h is generated from hw/csr.py.
//
// usage: raw_main IMAGE.bin PROG_BASE PROG_LEN MAX_CYCLES [ADDR:BYTES ...]
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "Vlowbit_system.h"
#include "Vlowbit_system___024root.h"
#include "csr_map.h"
#include "verilated.h"

// Verilator spells the "__" of Amaranth's port names as "___05F"
#define AXIL(name) s_axil___05F##name

static Vlowbit_system* top;
static uint64_t cycles = 0;

static void tick() {
    top->clk = 0;
    top->eval();
    top->clk = 1;
    top->eval();
    ++cycles;
}

// one DRAM word from / to little-endian bytes, for each storage type Verilator picks
static void put(IData& w, const uint8_t* b, int n) { w = 0; for (int i = n - 1; i >= 0; --i) w = (w << 8) | b[i]; }
static void put(QData& w, const uint8_t* b, int n) { w = 0; for (int i = n - 1; i >= 0; --i) w = (w << 8) | b[i]; }
template <std::size_t N> static void put(VlWide<N>& w, const uint8_t* b, int n) {
    for (std::size_t k = 0; k < N; ++k) { IData v; put(v, b + 4 * k, 4); w[k] = v; }
    (void)n;
}
static void get(const IData& w, uint8_t* b, int n) { for (int i = 0; i < n; ++i) b[i] = (w >> (8 * i)) & 0xff; }
static void get(const QData& w, uint8_t* b, int n) { for (int i = 0; i < n; ++i) b[i] = (w >> (8 * i)) & 0xff; }
template <std::size_t N> static void get(const VlWide<N>& w, uint8_t* b, int n) {
    for (std::size_t k = 0; k < N; ++k) get(static_cast<IData>(w[k]), b + 4 * k, 4);
    (void)n;
}

static void csr_write(uint32_t addr, uint32_t data) {
    top->AXIL(awaddr) = addr; top->AXIL(awvalid) = 1; top->AXIL(awprot) = 0;
    top->AXIL(wdata) = data; top->AXIL(wstrb) = 0xf; top->AXIL(wvalid) = 1; top->AXIL(bready) = 1;
    bool aw = false, w = false;
    for (int i = 0; i < 1000 && !(aw && w); ++i) {
        top->eval();
        bool aw_now = top->AXIL(awvalid) && top->AXIL(awready), w_now = top->AXIL(wvalid) && top->AXIL(wready);
        tick();
        if (aw_now) { aw = true; top->AXIL(awvalid) = 0; }
        if (w_now) { w = true; top->AXIL(wvalid) = 0; }
    }
    for (int i = 0; i < 1000; ++i) { top->eval(); bool b = top->AXIL(bvalid); tick(); if (b) break; }
    top->AXIL(bready) = 0;
}

static uint32_t csr_read(uint32_t addr) {
    top->AXIL(araddr) = addr; top->AXIL(arvalid) = 1; top->AXIL(arprot) = 0; top->AXIL(rready) = 1;
    for (int i = 0; i < 1000; ++i) { top->eval(); bool ar = top->AXIL(arready); tick(); if (ar) break; }
    top->AXIL(arvalid) = 0;
    uint32_t v = 0;
    for (int i = 0; i < 1000; ++i) {
        top->eval();
        if (top->AXIL(rvalid)) { v = top->AXIL(rdata); tick(); break; }
        tick();
    }
    top->AXIL(rready) = 0;
    return v;
}

int main(int argc, char** argv) {
    if (argc < 5) { std::fprintf(stderr, "usage: %s IMAGE PROG_BASE PROG_LEN MAX_CYCLES [ADDR:BYTES...]\n", argv[0]); return 2; }
    VerilatedContext ctx;
    top = new Vlowbit_system{&ctx};
    auto& mem = top->rootp->lowbit_system__DOT__u_dram__DOT__mem;
    const int nb = DRAM_WORD_BYTES;
    std::ifstream f(argv[1], std::ios::binary);
    std::vector<uint8_t> image((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::vector<uint8_t> zero(nb, 0);
    for (std::size_t i = 0; i * nb < image.size() && i < mem.size(); ++i) put(mem[i], image.data() + i * nb, nb);

    top->rst = 1;
    for (int i = 0; i < 4; ++i) tick();
    top->rst = 0;
    tick();
    csr_write(CSR_PROG_BASE, std::strtoul(argv[2], nullptr, 0));
    csr_write(CSR_PROG_LEN, std::strtoul(argv[3], nullptr, 0));
    const uint64_t limit = std::strtoull(argv[4], nullptr, 0);
    const uint64_t c0 = cycles;
    auto t0 = std::chrono::steady_clock::now();
    csr_write(CSR_CTRL, CTRL_START | CTRL_IRQ_ENABLE);
    while (!top->irq && cycles - c0 < limit) tick();
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const uint64_t run_cycles = cycles - c0;
    const bool finished = top->irq;

    std::printf("{\"finished\": %s, \"sim_cycles\": %llu, \"wall_s\": %.6f, \"status\": %u, \"error_code\": %u, "
                "\"error_pc\": %u, \"counters\": {", finished ? "true" : "false", (unsigned long long)run_cycles, wall,
                csr_read(CSR_STATUS), csr_read(CSR_ERROR), csr_read(CSR_ERROR_PC));
    for (int i = 0; i < N_COUNTERS; ++i)
        std::printf("%s\"%s\": %u", i ? ", " : "", COUNTER_NAMES[i], csr_read(COUNTER_BASE + 4 * i));
    std::printf("}, \"ranges\": [");
    std::vector<uint8_t> word(nb);
    for (int a = 5; a < argc; ++a) {
        std::string spec(argv[a]);
        uint64_t addr = std::strtoull(spec.substr(0, spec.find(':')).c_str(), nullptr, 0);
        uint64_t n = std::strtoull(spec.substr(spec.find(':') + 1).c_str(), nullptr, 0);
        std::printf("%s\"", a > 5 ? ", " : "");
        for (uint64_t k = addr; k < addr + n; ++k) {
            get(mem[k / nb], word.data(), nb);
            std::printf("%02x", word[k % nb]);
        }
        std::printf("\"");
    }
    std::printf("]}\n");
    top->final();
    delete top;
    return finished ? 0 : 1;
}
