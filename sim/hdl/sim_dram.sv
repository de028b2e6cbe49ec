// sim_dram: a simulation-only AXI4 slave memory with a fixed read latency, a fixed write
// response latency and a configurable beat rate, so that whole-program simulations keep
// Python off the per-beat path. Lint clean under `verilator --lint-only -Wall`; no timing
// constructs, no DPI. The `mem` array is the backdoor that sim/dram.py reads and writes.
//
// Timing convention (cycle n ends at rising edge n; a handshake "in cycle n" is sampled at edge n):
//   * AR handshake in cycle c  ->  first R beat of that burst valid in cycle c + READ_LATENCY
//     (READ_LATENCY >= 1; with RREADY high it is taken at edge c + READ_LATENCY).
//   * last W beat in cycle c   ->  BVALID first high in cycle c + 1 + WRITE_LATENCY
//     (WRITE_LATENCY >= 0; 0 = BVALID in the cycle right after the last W beat).
//   * BEAT_GAP: at least BEAT_GAP idle cycles between two R beats, and WREADY low for BEAT_GAP
//     cycles after each accepted W beat; bandwidth = DATA_BITS/8 / (1 + BEAT_GAP) bytes/cycle
//     per direction. Latencies are minima: a busy or stalled R/B channel delays a response.
//
// Outstanding requests: the read side is a latency pipeline that accepts one AR per cycle, plus
// MAX_OUTSTANDING bursts that may wait behind a busy R channel, i.e. ARREADY stays high while
// fewer than MAX_OUTSTANDING + READ_LATENCY bursts await their first beat (with fewer, a stream
// of single-beat bursts could not reach one beat per cycle: Little's law). Likewise
// MAX_OUTSTANDING AW bursts may wait behind the one whose W data is due next, and
// MAX_OUTSTANDING + WRITE_LATENCY + 1 finished bursts for their B response.
//
// Bursts: INCR (and WRAP, treated as INCR) step one full-width word per beat; FIXED repeats
// the word. AxSIZE is assumed to be log2(DATA_BITS/8) and is not read; the W burst ends after
// AWLEN+1 beats (WLAST is not read). IDs are echoed and responses return in request order.
// Addresses wrap modulo the memory size (WORDS * DATA_BITS/8 bytes); every response is OKAY.
//
// rd_beats / wr_beats count R and W handshakes since reset (wrapping at 2^32).
//
// Backdoor: `mem` (byte k of a word = bits 8k+7:8k, as on the bus) is public for VPI, and the
// bd_* block at the end copies a word range between `mem` and a hex file on request
// (sim/dram.py read_bytes / write_bytes). The memory itself is not reset.

module sim_dram #(
    parameter int DATA_BITS = 128,
    parameter int ADDR_BITS = 32,
    parameter int ID_BITS = 1,
    parameter int WORDS = 4096,
    parameter int READ_LATENCY = 20,
    parameter int WRITE_LATENCY = 10,
    parameter int BEAT_GAP = 0,
    parameter int MAX_OUTSTANDING = 8
) (
    input  wire                    clk,
    input  wire                    rst,

    input  wire [ID_BITS-1:0]      s_axi_awid,
    input  wire [ADDR_BITS-1:0]    s_axi_awaddr,
    input  wire [7:0]              s_axi_awlen,
    input  wire [2:0]              s_axi_awsize,
    input  wire [1:0]              s_axi_awburst,
    input  wire                    s_axi_awvalid,
    output wire                    s_axi_awready,
    input  wire [DATA_BITS-1:0]    s_axi_wdata,
    input  wire [DATA_BITS/8-1:0]  s_axi_wstrb,
    input  wire                    s_axi_wlast,
    input  wire                    s_axi_wvalid,
    output wire                    s_axi_wready,
    output reg  [ID_BITS-1:0]      s_axi_bid,
    output wire [1:0]              s_axi_bresp,
    output reg                     s_axi_bvalid,
    input  wire                    s_axi_bready,

    input  wire [ID_BITS-1:0]      s_axi_arid,
    input  wire [ADDR_BITS-1:0]    s_axi_araddr,
    input  wire [7:0]              s_axi_arlen,
    input  wire [2:0]              s_axi_arsize,
    input  wire [1:0]              s_axi_arburst,
    input  wire                    s_axi_arvalid,
    output wire                    s_axi_arready,
    output reg  [ID_BITS-1:0]      s_axi_rid,
    output reg  [DATA_BITS-1:0]    s_axi_rdata,
    output wire [1:0]              s_axi_rresp,
    output reg                     s_axi_rlast,
    output reg                     s_axi_rvalid,
    input  wire                    s_axi_rready,

    output reg  [31:0]             rd_beats,
    output reg  [31:0]             wr_beats
);

    localparam int BYTES = DATA_BITS / 8;
    localparam int SHIFT = $clog2(BYTES);
    localparam int IDX_BITS = WORDS > 1 ? $clog2(WORDS) : 1;
    localparam int GAP_BITS = 16;
    localparam int RQ_DEPTH = MAX_OUTSTANDING + READ_LATENCY;
    localparam int AQ_DEPTH = MAX_OUTSTANDING + 1;
    localparam int BQ_DEPTH = MAX_OUTSTANDING + WRITE_LATENCY + 1;
    localparam int RQ_PTR = RQ_DEPTH > 1 ? $clog2(RQ_DEPTH) : 1;
    localparam int AQ_PTR = AQ_DEPTH > 1 ? $clog2(AQ_DEPTH) : 1;
    localparam int BQ_PTR = BQ_DEPTH > 1 ? $clog2(BQ_DEPTH) : 1;
    localparam [1:0] BURST_FIXED = 2'b00;

    // Elaboration-time checks of the parameters.
    if (DATA_BITS != 32 && DATA_BITS != 64 && DATA_BITS != 128 && DATA_BITS != 256) begin : g_bad_data_bits
        $fatal(1, "sim_dram: DATA_BITS must be 32, 64, 128 or 256");
    end
    if (ADDR_BITS < 1 || ADDR_BITS > 32) begin : g_bad_addr_bits
        $fatal(1, "sim_dram: ADDR_BITS must be 1..32");
    end
    if (WORDS < 1) begin : g_bad_words
        $fatal(1, "sim_dram: WORDS must be at least 1");
    end
    if (READ_LATENCY < 1) begin : g_bad_read_latency
        $fatal(1, "sim_dram: READ_LATENCY must be at least 1");
    end
    if (WRITE_LATENCY < 0) begin : g_bad_write_latency
        $fatal(1, "sim_dram: WRITE_LATENCY must be at least 0");
    end
    if (BEAT_GAP < 0 || BEAT_GAP >= (1 << GAP_BITS)) begin : g_bad_beat_gap
        $fatal(1, "sim_dram: BEAT_GAP must be 0..65535");
    end
    if (MAX_OUTSTANDING < 1) begin : g_bad_max_outstanding
        $fatal(1, "sim_dram: MAX_OUTSTANDING must be at least 1");
    end

    reg [DATA_BITS-1:0] mem [0:WORDS-1] /* verilator public_flat_rw */;

    // Free-running cycle count; queue entries carry the cycle from which they may be served,
    // compared by wrapping difference.
    reg [31:0] now;

    function automatic [IDX_BITS-1:0] word_index(input [ADDR_BITS-1:0] addr);
        word_index = IDX_BITS'((64'(addr) >> SHIFT) % 64'(WORDS));
    endfunction

    function automatic [IDX_BITS-1:0] next_index(input [IDX_BITS-1:0] idx, input fixed);
        if (fixed) next_index = idx;
        else if (idx == IDX_BITS'(WORDS - 1)) next_index = '0;
        else next_index = idx + 1'b1;
    endfunction

    function automatic reached(input [31:0] t, input [31:0] cycle);
        reached = cycle - t < 32'h8000_0000;
    endfunction

    assign s_axi_rresp = 2'b00;
    assign s_axi_bresp = 2'b00;

    // ---- read side -------------------------------------------------------------------------

    reg [ID_BITS-1:0]  rq_id    [0:RQ_DEPTH-1];
    reg [IDX_BITS-1:0] rq_idx   [0:RQ_DEPTH-1];
    reg [7:0]          rq_len   [0:RQ_DEPTH-1];
    reg                rq_fixed [0:RQ_DEPTH-1];
    reg [31:0]         rq_t     [0:RQ_DEPTH-1];
    reg [RQ_PTR-1:0]   rq_rd, rq_wr;
    reg [RQ_PTR:0]     rq_count;

    reg                r_active;      // a burst is part-way through its beats
    reg [ID_BITS-1:0]  r_id;
    reg [IDX_BITS-1:0] r_idx;
    reg [7:0]          r_left;        // beats after the next one
    reg                r_fixed;
    reg [GAP_BITS-1:0] r_gap;

    assign s_axi_arready = rq_count < (RQ_PTR + 1)'(RQ_DEPTH);
    wire ar_fire = s_axi_arvalid && s_axi_arready;

    // The queue head, or the AR arriving this cycle when the queue is empty (READ_LATENCY = 1).
    wire               rq_empty = rq_count == '0;
    wire               head_valid = !rq_empty || ar_fire;
    wire [ID_BITS-1:0] head_id = rq_empty ? s_axi_arid : rq_id[rq_rd];
    wire [IDX_BITS-1:0] head_idx = rq_empty ? word_index(s_axi_araddr) : rq_idx[rq_rd];
    wire [7:0]         head_len = rq_empty ? s_axi_arlen : rq_len[rq_rd];
    wire               head_fixed = rq_empty ? s_axi_arburst == BURST_FIXED : rq_fixed[rq_rd];
    wire [31:0]        ar_t = now + 32'(READ_LATENCY - 1);
    wire [31:0]        head_t = rq_empty ? ar_t : rq_t[rq_rd];

    wire r_can = (!s_axi_rvalid || s_axi_rready) && r_gap == '0;
    wire issue_cur = r_can && r_active;
    wire issue_head = r_can && !r_active && head_valid && reached(head_t, now);
    wire issue = issue_cur || issue_head;
    wire [IDX_BITS-1:0] issue_idx = r_active ? r_idx : head_idx;

    always @(posedge clk) begin
        if (rst) begin
            rq_rd <= '0;
            rq_wr <= '0;
            rq_count <= '0;
            r_active <= 1'b0;
            r_gap <= '0;
            s_axi_rvalid <= 1'b0;
            rd_beats <= '0;
        end else begin
            if (ar_fire) begin
                rq_id[rq_wr] <= s_axi_arid;
                rq_idx[rq_wr] <= word_index(s_axi_araddr);
                rq_len[rq_wr] <= s_axi_arlen;
                rq_fixed[rq_wr] <= s_axi_arburst == BURST_FIXED;
                rq_t[rq_wr] <= ar_t;
                rq_wr <= rq_wr == RQ_PTR'(RQ_DEPTH - 1) ? '0 : rq_wr + 1'b1;
            end
            if (issue_head) rq_rd <= rq_rd == RQ_PTR'(RQ_DEPTH - 1) ? '0 : rq_rd + 1'b1;
            rq_count <= rq_count + (RQ_PTR + 1)'(ar_fire) - (RQ_PTR + 1)'(issue_head);

            if (issue) begin
                s_axi_rvalid <= 1'b1;
                s_axi_rdata <= mem[issue_idx];
                s_axi_rid <= r_active ? r_id : head_id;
                s_axi_rlast <= r_active ? r_left == 8'd0 : head_len == 8'd0;
                r_gap <= GAP_BITS'(BEAT_GAP);
            end else begin
                if (s_axi_rready) s_axi_rvalid <= 1'b0;
                if (r_gap != '0) r_gap <= r_gap - 1'b1;
            end
            if (issue_head) begin
                r_active <= head_len != 8'd0;
                r_id <= head_id;
                r_idx <= next_index(head_idx, head_fixed);
                r_left <= head_len - 8'd1;
                r_fixed <= head_fixed;
            end else if (issue_cur) begin
                r_active <= r_left != 8'd0;
                r_idx <= next_index(r_idx, r_fixed);
                r_left <= r_left - 8'd1;
            end

            if (s_axi_rvalid && s_axi_rready) rd_beats <= rd_beats + 32'd1;
        end
    end

    // ---- write side ------------------------------------------------------------------------

    reg [ID_BITS-1:0]  aq_id    [0:AQ_DEPTH-1];
    reg [IDX_BITS-1:0] aq_idx   [0:AQ_DEPTH-1];
    reg [7:0]          aq_len   [0:AQ_DEPTH-1];
    reg                aq_fixed [0:AQ_DEPTH-1];
    reg [AQ_PTR-1:0]   aq_rd, aq_wr;
    reg [AQ_PTR:0]     aq_count;

    reg [ID_BITS-1:0]  bq_id [0:BQ_DEPTH-1];
    reg [31:0]         bq_t  [0:BQ_DEPTH-1];
    reg [BQ_PTR-1:0]   bq_rd, bq_wr;
    reg [BQ_PTR:0]     bq_count;

    reg                w_active;
    reg [ID_BITS-1:0]  w_id;
    reg [IDX_BITS-1:0] w_idx;
    reg [7:0]          w_left;
    reg                w_fixed;
    reg [GAP_BITS-1:0] w_gap;

    assign s_axi_awready = aq_count < (AQ_PTR + 1)'(AQ_DEPTH);
    wire aw_fire = s_axi_awvalid && s_axi_awready;
    wire aq_empty = aq_count == '0;

    assign s_axi_wready = (w_active || !aq_empty) && w_gap == '0 && bq_count < (BQ_PTR + 1)'(BQ_DEPTH);
    wire w_fire = s_axi_wvalid && s_axi_wready;
    wire w_head = w_fire && !w_active;  // first beat of the burst at the AW queue head
    wire [ID_BITS-1:0]  wb_id = w_active ? w_id : aq_id[aq_rd];
    wire [IDX_BITS-1:0] wb_idx = w_active ? w_idx : aq_idx[aq_rd];
    wire w_last = w_fire && (w_active ? w_left == 8'd0 : aq_len[aq_rd] == 8'd0);

    wire [DATA_BITS-1:0] w_mask;
    genvar g;
    generate
        for (g = 0; g < BYTES; g = g + 1) begin : g_strb
            assign w_mask[8*g +: 8] = {8{s_axi_wstrb[g]}};
        end
    endgenerate

    // The B queue head, or the burst finishing this cycle when the queue is empty.
    wire         bq_empty = bq_count == '0;
    wire [31:0]  wl_t = now + 32'(WRITE_LATENCY);
    wire         b_head_valid = !bq_empty || w_last;
    wire [31:0]  b_head_t = bq_empty ? wl_t : bq_t[bq_rd];
    wire [ID_BITS-1:0] b_head_id = bq_empty ? wb_id : bq_id[bq_rd];
    wire b_issue = (!s_axi_bvalid || s_axi_bready) && b_head_valid && reached(b_head_t, now);

    always @(posedge clk) begin
        if (rst) begin
            aq_rd <= '0;
            aq_wr <= '0;
            aq_count <= '0;
            bq_rd <= '0;
            bq_wr <= '0;
            bq_count <= '0;
            w_active <= 1'b0;
            w_gap <= '0;
            s_axi_bvalid <= 1'b0;
            wr_beats <= '0;
        end else begin
            if (aw_fire) begin
                aq_id[aq_wr] <= s_axi_awid;
                aq_idx[aq_wr] <= word_index(s_axi_awaddr);
                aq_len[aq_wr] <= s_axi_awlen;
                aq_fixed[aq_wr] <= s_axi_awburst == BURST_FIXED;
                aq_wr <= aq_wr == AQ_PTR'(AQ_DEPTH - 1) ? '0 : aq_wr + 1'b1;
            end
            if (w_head) aq_rd <= aq_rd == AQ_PTR'(AQ_DEPTH - 1) ? '0 : aq_rd + 1'b1;
            aq_count <= aq_count + (AQ_PTR + 1)'(aw_fire) - (AQ_PTR + 1)'(w_head);

            if (w_fire) begin
                mem[wb_idx] <= (mem[wb_idx] & ~w_mask) | (s_axi_wdata & w_mask);
                w_gap <= GAP_BITS'(BEAT_GAP);
                wr_beats <= wr_beats + 32'd1;
            end else if (w_gap != '0) begin
                w_gap <= w_gap - 1'b1;
            end
            if (w_head) begin
                w_active <= aq_len[aq_rd] != 8'd0;
                w_id <= aq_id[aq_rd];
                w_idx <= next_index(aq_idx[aq_rd], aq_fixed[aq_rd]);
                w_left <= aq_len[aq_rd] - 8'd1;
                w_fixed <= aq_fixed[aq_rd];
            end else if (w_fire) begin
                w_active <= w_left != 8'd0;
                w_idx <= next_index(w_idx, w_fixed);
                w_left <= w_left - 8'd1;
            end

            if (w_last) begin
                bq_id[bq_wr] <= wb_id;
                bq_t[bq_wr] <= wl_t;
                bq_wr <= bq_wr == BQ_PTR'(BQ_DEPTH - 1) ? '0 : bq_wr + 1'b1;
            end
            if (b_issue) bq_rd <= bq_rd == BQ_PTR'(BQ_DEPTH - 1) ? '0 : bq_rd + 1'b1;
            bq_count <= bq_count + (BQ_PTR + 1)'(w_last) - (BQ_PTR + 1)'(b_issue);

            if (b_issue) begin
                s_axi_bvalid <= 1'b1;
                s_axi_bid <= b_head_id;
            end else if (s_axi_bready) begin
                s_axi_bvalid <= 1'b0;
            end
        end
    end

    always @(posedge clk) begin
        if (rst) now <= '0;
        else now <= now + 32'd1;
    end

    // ---- backdoor bulk transfers ----------------------------------------------------------------
    // For sim/dram.py only; nothing in the design drives these. The testbench sets the file name
    // (packed characters), the word range and the direction through VPI, then changes bd_req;
    // this process copies the words between `mem` and the hex file at once ($readmemh and
    // $writememh run in C++, far faster than one VPI access per word) and sets bd_done = bd_req.
    localparam int BD_PATH_BYTES = 512;
    reg [8*BD_PATH_BYTES-1:0] bd_file /* verilator public_flat_rw */;
    reg [31:0] bd_first /* verilator public_flat_rw */;
    reg [31:0] bd_last /* verilator public_flat_rw */;
    reg        bd_load /* verilator public_flat_rw */;  // 1: file -> mem, 0: mem -> file
    reg [31:0] bd_req /* verilator public_flat_rw */;
    reg [31:0] bd_done /* verilator public_flat_rw */;

    initial begin
        bd_file = '0;
        bd_first = '0;
        bd_last = '0;
        bd_load = 1'b0;
        bd_req = '0;
        bd_done = '0;
    end

    always @(bd_req) begin
        if (bd_req != bd_done) begin
            if (bd_load) $readmemh(bd_file, mem, bd_first, bd_last);
            else $writememh(bd_file, mem, bd_first, bd_last);
            bd_done = bd_req;
        end
    end

    // Read only by the checks above, or deliberately ignored (see the header).
    wire _unused_ok = &{1'b0, s_axi_awsize, s_axi_arsize, s_axi_wlast};

endmodule
