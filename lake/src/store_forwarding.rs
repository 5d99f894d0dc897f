//! The object store wrappers of the lake (the read cache, the custody digests) each change
//! reads or writes and pass the rest through: the pass-through, written once.

/// `impl ObjectStore for $wrapper` with the methods given, the others handed to
/// `self.inner` unchanged: with `pass writes`, the puts; with `pass reads`, the gets; and
/// always listing, deleting, copying and renaming. Callers import `ObjectStore`,
/// `BoxStream`, `Path`, `ObjectMeta`, `ListResult`, `CopyOptions`, `RenameOptions`, the
/// types of the passed methods, and `object_store`.
#[macro_export]
#[doc(hidden)]
macro_rules! object_store_wrapper {
    ($wrapper:ty, pass writes { $($methods:tt)* }) => {
        $crate::object_store_wrapper!(@impl $wrapper {
            $($methods)*

            async fn put_opts(
                &self,
                location: &Path,
                payload: PutPayload,
                opts: PutOptions,
            ) -> object_store::Result<PutResult> {
                self.inner.put_opts(location, payload, opts).await
            }

            async fn put_multipart_opts(
                &self,
                location: &Path,
                opts: PutMultipartOptions,
            ) -> object_store::Result<Box<dyn MultipartUpload>> {
                self.inner.put_multipart_opts(location, opts).await
            }
        });
    };
    ($wrapper:ty, pass reads { $($methods:tt)* }) => {
        $crate::object_store_wrapper!(@impl $wrapper {
            $($methods)*

            async fn get_opts(
                &self,
                location: &Path,
                options: GetOptions,
            ) -> object_store::Result<GetResult> {
                self.inner.get_opts(location, options).await
            }

            async fn get_ranges(
                &self,
                location: &Path,
                ranges: &[std::ops::Range<u64>],
            ) -> object_store::Result<Vec<bytes::Bytes>> {
                self.inner.get_ranges(location, ranges).await
            }
        });
    };
    (@impl $wrapper:ty { $($methods:tt)* }) => {
        #[async_trait::async_trait]
        impl ObjectStore for $wrapper {
            $($methods)*

            fn delete_stream(
                &self,
                locations: BoxStream<'static, object_store::Result<Path>>,
            ) -> BoxStream<'static, object_store::Result<Path>> {
                self.inner.delete_stream(locations)
            }

            fn list(
                &self,
                prefix: Option<&Path>,
            ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
                self.inner.list(prefix)
            }

            fn list_with_offset(
                &self,
                prefix: Option<&Path>,
                offset: &Path,
            ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
                self.inner.list_with_offset(prefix, offset)
            }

            async fn list_with_delimiter(
                &self,
                prefix: Option<&Path>,
            ) -> object_store::Result<ListResult> {
                self.inner.list_with_delimiter(prefix).await
            }

            async fn copy_opts(
                &self,
                from: &Path,
                to: &Path,
                options: CopyOptions,
            ) -> object_store::Result<()> {
                self.inner.copy_opts(from, to, options).await
            }

            async fn rename_opts(
                &self,
                from: &Path,
                to: &Path,
                options: RenameOptions,
            ) -> object_store::Result<()> {
                self.inner.rename_opts(from, to, options).await
            }
        }
    };
}
