use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn bytes_arrive_in_order_both_ways() {
    let (mut a, mut b) = pair(1024);
    a.write_all(b"hello").await.unwrap();
    b.write_all(b"world!").await.unwrap();
    let mut got = [0u8; 5];
    b.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"hello");
    let mut got = [0u8; 6];
    a.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"world!");
}

#[tokio::test]
async fn a_full_pipe_makes_the_writer_wait_and_nothing_is_lost() {
    let (a, b) = pair(100);
    let (_ar, mut aw) = a.into_split();
    let (mut br, _bw) = b.into_split();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        // Vectored writes of uneven slices.
        for chunk in sent.chunks(777) {
            let (x, y) = chunk.split_at(chunk.len() / 3);
            let mut off = 0;
            while off < chunk.len() {
                let n = if off < x.len() {
                    aw.write_vectored(&[io::IoSlice::new(&x[off..]), io::IoSlice::new(y)])
                        .await
                        .unwrap()
                } else {
                    aw.write(&chunk[off..]).await.unwrap()
                };
                assert!(n <= 100, "one write took {n} bytes into a 100-byte pipe");
                off += n;
            }
        }
    });
    let mut got = BytesMut::new();
    while got.len() < data.len() {
        let n = std::future::poll_fn(|cx| br.poll_read_into(cx, &mut got, 64))
            .await
            .unwrap();
        assert!(n > 0 && n <= 64);
    }
    writer.await.unwrap();
    assert_eq!(&got[..], &data[..]);
}

#[tokio::test]
async fn dropping_the_writer_is_eof_after_the_buffered_bytes() {
    let (a, mut b) = pair(1024);
    let (_ar, mut aw) = a.into_split();
    aw.write_all(b"last words").await.unwrap();
    drop(aw);
    let mut got = Vec::new();
    b.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"last words");
}

#[tokio::test]
async fn shutdown_is_eof_and_later_writes_fail() {
    let (mut a, mut b) = pair(1024);
    a.write_all(b"x").await.unwrap();
    a.shutdown().await.unwrap();
    assert!(a.write_all(b"y").await.is_err());
    let mut got = Vec::new();
    b.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"x");
}

#[tokio::test]
async fn writing_to_a_dropped_reader_is_broken_pipe_and_wakes_a_waiting_writer() {
    let (a, b) = pair(10);
    let (_ar, mut aw) = a.into_split();
    let (br, _bw) = b.into_split();
    aw.write_all(&[0; 10]).await.unwrap();
    let waiting = tokio::spawn(async move { aw.write_all(b"more").await });
    tokio::task::yield_now().await;
    drop(br);
    let err = waiting.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
}

#[tokio::test]
async fn a_drained_large_buffer_is_released() {
    let (mut a, b) = pair(1 << 20);
    let (mut br, _bw) = b.into_split();
    a.write_all(&vec![7u8; 256 * 1024]).await.unwrap();
    let mut got = BytesMut::new();
    while got.len() < 256 * 1024 {
        std::future::poll_fn(|cx| br.poll_read_into(cx, &mut got, usize::MAX))
            .await
            .unwrap();
    }
    assert_eq!(br.0.state.lock().buf.capacity(), 0);
}

#[tokio::test]
async fn a_sender_writes_beside_the_writer_without_waiting() {
    let (a, mut b) = pair(8);
    let (_ar, aw) = a.into_split();
    let tx = aw.sender();
    assert_eq!(tx.try_write(b"12345"), 5);
    assert_eq!(tx.try_write(b"6789"), 3, "only the room left is taken");
    assert_eq!(tx.try_write(b"x"), 0);
    let mut got = [0u8; 8];
    b.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"12345678");
    drop(aw);
    assert_eq!(tx.try_write(b"after"), 0, "nothing after the writer's end");
}
