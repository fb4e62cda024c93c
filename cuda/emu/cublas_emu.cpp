// The cuBLAS stand-in on OpenBLAS (see cublas_emu.h).
#include "cuda/emu/cublas_emu.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "cuda/emu/internal.h"

using namespace cuemu::detail;

struct cublasContext {
    cudaStream_t stream = nullptr;
    int device = 0;
};

namespace {

const char* op_name(cublasOperation_t op) {
    switch (op) {
        case CUBLAS_OP_N: return "CUBLAS_OP_N";
        case CUBLAS_OP_T: return "CUBLAS_OP_T";
        case CUBLAS_OP_C: return "CUBLAS_OP_C";
    }
    return "an invalid cublasOperation_t";
}

cublasStatus_t invalid(const char* api, const std::string& what, const std::source_location& where) {
    report_host(Severity::Error, where, std::string(api) + ": " + what);
    return CUBLAS_STATUS_INVALID_VALUE;
}

// Elements a column-major rows x cols matrix with leading dimension ld spans.
long long extent(long long rows, long long cols, long long ld) {
    return rows == 0 || cols == 0 ? 0 : ld * (cols - 1) + rows;
}

// The argument checks cuBLAS makes (CUBLAS_STATUS_INVALID_VALUE), then the stand-in's own: device memory of the
// right size for every operand of every batch, and host scalars.
cublasStatus_t check_gemm(const char* api, cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb, int m,
                          int n, int k, const float* alpha, const float* A, int lda, long long strideA,
                          const float* B, int ldb, long long strideB, const float* beta, const float* C, int ldc,
                          long long strideC, int batch, const std::source_location& where) {
    if (!handle) {
        report_host(Severity::Error, where, std::string(api) + ": the handle is null (call cublasCreate first)");
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    for (cublasOperation_t op : {ta, tb})
        if (op != CUBLAS_OP_N && op != CUBLAS_OP_T && op != CUBLAS_OP_C)
            return invalid(api, std::string("transa/transb is ") + op_name(op), where);
    if (m < 0 || n < 0 || k < 0 || batch < 0)
        return invalid(api, "negative size (m " + std::to_string(m) + ", n " + std::to_string(n) + ", k " +
                                std::to_string(k) + ", batchCount " + std::to_string(batch) + ")",
                       where);
    int a_rows = ta == CUBLAS_OP_N ? m : k, a_cols = ta == CUBLAS_OP_N ? k : m;
    int b_rows = tb == CUBLAS_OP_N ? k : n, b_cols = tb == CUBLAS_OP_N ? n : k;
    if (lda < std::max(1, a_rows))
        return invalid(api, "lda " + std::to_string(lda) + " < " + std::to_string(std::max(1, a_rows)) +
                                " (the rows of A as stored: column-major, " + op_name(ta) + ")",
                       where);
    if (ldb < std::max(1, b_rows))
        return invalid(api, "ldb " + std::to_string(ldb) + " < " + std::to_string(std::max(1, b_rows)) +
                                " (the rows of B as stored: column-major, " + op_name(tb) + ")",
                       where);
    if (ldc < std::max(1, m))
        return invalid(api, "ldc " + std::to_string(ldc) + " < m = " + std::to_string(m), where);
    if (!alpha || !beta) return invalid(api, "alpha or beta is null", where);
    if (is_device_pointer(alpha) || is_device_pointer(beta))
        return invalid(api, "alpha/beta point to device memory, but the pointer mode is CUBLAS_POINTER_MODE_HOST",
                       where);
    if (m == 0 || n == 0 || batch == 0) return CUBLAS_STATUS_SUCCESS;
    long long a_span = extent(a_rows, a_cols, lda), b_span = extent(b_rows, b_cols, ldb), c_span = extent(m, n, ldc);
    long long last = batch - 1;
    size_t a_bytes = size_t(strideA * last + a_span) * sizeof(float);
    size_t b_bytes = size_t(strideB * last + b_span) * sizeof(float);
    size_t c_bytes = size_t(strideC * last + c_span) * sizeof(float);
    bool ok = (a_span == 0 || check_device_range(api, "A", A, a_bytes, where)) &&
              (b_span == 0 || check_device_range(api, "B", B, b_bytes, where)) &&
              check_device_range(api, "C", C, c_bytes, where);
    return ok ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

CBLAS_TRANSPOSE to_cblas(cublasOperation_t op) {
    return op == CUBLAS_OP_N ? CblasNoTrans : CblasTrans;  // real matrices: C (conjugate transpose) is T
}

void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc) {
    if (beta == 0.0f) {
        // cuBLAS does not read C when beta is 0, so NaN there must not leak into the result.
        for (int j = 0; j < n; ++j) std::memset(C + size_t(j) * size_t(ldc), 0, size_t(m) * sizeof(float));
    }
    if (k == 0 || alpha == 0.0f) {
        if (beta != 0.0f && beta != 1.0f)
            for (int j = 0; j < n; ++j)
                for (int i = 0; i < m; ++i) C[size_t(j) * size_t(ldc) + size_t(i)] *= beta;
        return;
    }
    cblas_sgemm(CblasColMajor, to_cblas(ta), to_cblas(tb), m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace

cublasStatus_t cublasCreate(cublasHandle_t* handle, cuemu_where where) {
    if (!handle) {
        report_host(Severity::Error, where, "cublasCreate: the output pointer is null");
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    *handle = new cublasContext();
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle, cuemu_where where) {
    if (!handle) {
        report_host(Severity::Error, where, "cublasDestroy: the handle is null");
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream, cuemu_where where) {
    if (!handle) {
        report_host(Severity::Error, where, "cublasSetStream: the handle is null");
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetStream(cublasHandle_t handle, cudaStream_t* stream, cuemu_where where) {
    if (!handle || !stream) {
        report_host(Severity::Error, where, "cublasGetStream: the handle or the output pointer is null");
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    *stream = handle->stream;
    return CUBLAS_STATUS_SUCCESS;
}

const char* cublasGetStatusName(cublasStatus_t status) {
    switch (status) {
        case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
        case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
        case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
        case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
        case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
        case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
        case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
        case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}

const char* cublasGetStatusString(cublasStatus_t status) {
    switch (status) {
        case CUBLAS_STATUS_SUCCESS: return "success";
        case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
        case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
        case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
        case CUBLAS_STATUS_ARCH_MISMATCH: return "an absent device architectural feature is required";
        case CUBLAS_STATUS_MAPPING_ERROR: return "an access to GPU memory space failed";
        case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
        case CUBLAS_STATUS_INTERNAL_ERROR: return "an internal operation failed";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "the feature required is not supported";
    }
    return "unknown error";
}

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                           int k, const float* alpha, const float* A, int lda, const float* B, int ldb,
                           const float* beta, float* C, int ldc, cuemu_where where) {
    cublasStatus_t s = check_gemm("cublasSgemm", handle, transa, transb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta,
                                  C, ldc, 0, 1, where);
    if (s != CUBLAS_STATUS_SUCCESS || m == 0 || n == 0) return s;
    gemm(transa, transb, m, n, k, *alpha, A, lda, B, ldb, *beta, C, ldc);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                         int m, int n, int k, const float* alpha, const float* A, int lda,
                                         long long strideA, const float* B, int ldb, long long strideB,
                                         const float* beta, float* C, int ldc, long long strideC, int batchCount,
                                         cuemu_where where) {
    cublasStatus_t s = check_gemm("cublasSgemmStridedBatched", handle, transa, transb, m, n, k, alpha, A, lda,
                                  strideA, B, ldb, strideB, beta, C, ldc, strideC, batchCount, where);
    if (s != CUBLAS_STATUS_SUCCESS || m == 0 || n == 0) return s;
    for (int i = 0; i < batchCount; ++i)
        gemm(transa, transb, m, n, k, *alpha, A + strideA * i, lda, B + strideB * i, ldb, *beta, C + strideC * i, ldc);
    return CUBLAS_STATUS_SUCCESS;
}
